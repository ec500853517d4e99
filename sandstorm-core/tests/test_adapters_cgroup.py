"""Readers of cgroup accounting files: real kernel formats in, numbers out."""

from __future__ import annotations

from sandstorm.adapters import blkio_bytes, cgroup_counters, io_bytes


def test_counters_read_key_value_lines_and_skip_the_rest() -> None:
    text = "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\nnr_periods\nbad x\nneg -3\n"
    assert cgroup_counters(text) == {
        "usage_usec": 1500,
        "user_usec": 1000,
        "system_usec": 500,
        "neg": -3,
    }
    assert cgroup_counters("") == {}


def test_io_stat_sums_devices() -> None:
    text = "8:0 rbytes=4096 wbytes=512 rios=1 wios=1\n8:16 rbytes=100 wbytes=x dbytes=7\n"
    assert io_bytes(text) == (4196, 512)
    assert io_bytes("") == (0, 0)


def test_blkio_sums_reads_and_writes_not_totals() -> None:
    text = "8:0 Read 4096\n8:0 Write 512\n8:0 Sync 4608\n8:0 Total 4608\nTotal 4608\n"
    assert blkio_bytes(text) == (4096, 512)
