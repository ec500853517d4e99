"""Pure wire mapping: error replies, multipart bodies, the log demultiplexer."""

from __future__ import annotations

import httpx
import pytest

from sandstorm import (
    AuthenticationError,
    ProviderAPIError,
    ProviderUnavailable,
    QuotaExceeded,
    RateLimited,
    ResourceAllocationError,
)
from sandstorm_daytona._cgroup import parse_cgroup
from sandstorm_daytona._errors import error_from_response, parse_retry_after
from sandstorm_daytona._mapping import allocation, network_fields
from sandstorm_daytona._multipart import parse_multipart
from sandstorm_daytona._stream import Demux


def reply(status: int, message: str, headers: dict[str, str] | None = None) -> httpx.Response:
    body = {"statusCode": status, "error": "Err", "message": message, "path": "/api/sandbox"}
    return httpx.Response(status, json=body, headers=headers or {})


@pytest.mark.parametrize(
    ("status", "message", "kind"),
    [
        (401, "Invalid API key", AuthenticationError),
        (403, "Forbidden resource", AuthenticationError),
        (403, "Total CPU quota exceeded. Maximum allowed: 10", QuotaExceeded),
        (400, "Sandbox limit reached: maximum number of sandboxes", QuotaExceeded),
        (400, "Cannot specify Sandbox resources when using a snapshot", ResourceAllocationError),
        (400, "No available runners", ResourceAllocationError),
        (500, "Internal server error", ProviderUnavailable),
        (503, "Service Unavailable", ProviderUnavailable),
        (409, "Conflict", ProviderAPIError),
    ],
)
def test_status_mapping(status: int, message: str, kind: type[Exception]) -> None:
    error = error_from_response(reply(status, message, {"x-request-id": "req-42"}), "create")
    assert type(error) is kind
    assert isinstance(error, ProviderAPIError)
    assert message in str(error)
    assert error.request_id == "req-42"
    assert error.status == status
    assert "req-42" in str(error)


def test_rate_limit_carries_retry_after() -> None:
    error = error_from_response(reply(429, "ThrottlerException", {"retry-after": "7"}), "list")
    assert isinstance(error, RateLimited)
    assert error.retry_after == 7.0


def test_daemon_error_code_is_kept() -> None:
    body = {"statusCode": 400, "message": "bad path", "code": "INVALID_FILE_PATH"}
    error = error_from_response(httpx.Response(400, json=body), "upload")
    assert "INVALID_FILE_PATH" in str(error)


def test_message_arrays_are_joined() -> None:
    body = {"statusCode": 400, "message": ["cpu must be an integer", "name too long"]}
    error = error_from_response(httpx.Response(400, json=body), "create")
    assert "cpu must be an integer, name too long" in str(error)


def test_non_json_error_body() -> None:
    error = error_from_response(httpx.Response(502, text="<html>bad gateway</html>"), "get")
    assert isinstance(error, ProviderUnavailable)
    assert "bad gateway" in str(error)


def test_retry_after_http_date() -> None:
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0
    assert parse_retry_after("1.5") == 1.5
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


def test_multipart_parse_binary_and_errors() -> None:
    payload = bytes(range(256)) + b"\r\n--DAYTONA-FILE-BOUNDARY not a boundary"
    body = (
        b"--DAYTONA-FILE-BOUNDARY\r\n"
        b'Content-Disposition: form-data; name="file"; filename="a b.bin"; '
        b"filename*=utf-8''d%C3%A9j%C3%A0.bin\r\n"
        b"Content-Type: application/octet-stream\r\n\r\n" + payload + b"\r\n"
        b"--DAYTONA-FILE-BOUNDARY\r\n"
        b'Content-Disposition: form-data; name="error"; filename="missing.txt"\r\n'
        b"Content-Type: application/json\r\n\r\n"
        b'{"message": "no such file", "statusCode": 404, "code": "FILE_NOT_FOUND"}\r\n'
        b"--DAYTONA-FILE-BOUNDARY--\r\n"
    )
    parts = parse_multipart(body, "multipart/form-data; boundary=DAYTONA-FILE-BOUNDARY")
    assert [(p.name, p.filename) for p in parts] == [("file", "déjà.bin"), ("error", "missing.txt")]
    assert parts[0].data == payload


def test_multipart_truncated_is_an_error() -> None:
    body = b'--B\r\nContent-Disposition: form-data; name="file"; filename="a"\r\n\r\nxyz'
    with pytest.raises(ValueError, match="truncated"):
        parse_multipart(body, "multipart/form-data; boundary=B")
    with pytest.raises(ValueError, match="multipart/form-data"):
        parse_multipart(body, "application/json")


def test_demux_handles_markers_split_across_frames() -> None:
    got: list[tuple[str, str]] = []
    demux = Demux(lambda stream, text: got.append((stream, text)))
    stream = b"junk\x01\x01\x01hello \xc3\xa9\x02\x02\x02oops\x01\x01\x01bye"
    for i in range(len(stream)):  # one byte per frame: the worst case
        demux.feed(stream[i : i + 1])
    demux.close()
    out = "".join(t for s, t in got if s == "stdout")
    err = "".join(t for s, t in got if s == "stderr")
    assert out == "hello ébye"
    assert err == "oops"


def test_demux_keeps_lone_control_bytes() -> None:
    got: list[tuple[str, str]] = []
    demux = Demux(lambda stream, text: got.append((stream, text)))
    demux.feed(b"\x01\x01\x01a\x01b\x02\x02c")
    demux.close()
    assert "".join(t for _, t in got) == "a\x01b\x02\x02c"


def test_resources_round_up_never_down() -> None:
    from sandstorm import Resources

    assert allocation(Resources(cpu=0.5, memory=1, disk=1)) == (1, 1, 1)
    assert allocation(Resources(cpu=2, memory=1024, disk=3 * 1024)) == (2, 1, 3)
    assert allocation(Resources(cpu=2.01, memory=1025, disk=3073)) == (3, 2, 4)
    assert allocation(Resources(), defaults=False) == (0, 0, 0)


def test_network_policy_mapping() -> None:
    from sandstorm import NetworkPolicy

    assert network_fields(NetworkPolicy.blocked()) == {"networkBlockAll": True}
    assert network_fields(NetworkPolicy.host()) == {"networkBlockAll": False}
    fields = network_fields(
        NetworkPolicy(mode="allow_list", allow=("10.0.0.0/8", "1.2.3.4", "github.com"))
    )
    assert fields == {
        "networkBlockAll": False,
        "networkAllowList": "10.0.0.0/8,1.2.3.4/32",
        "domainAllowList": "github.com",
    }


@pytest.mark.parametrize(
    ("allow", "reason"),
    [
        (("::1",), "IPv4 networks only"),
        (("2001:db8::/32",), "IPv4 networks only"),
        (tuple(f"10.0.{i}.0/24" for i in range(11)), "more than 10 networks"),
        (("localhost",), 'Invalid domain: "localhost"'),
        (("example.com:443",), 'Invalid domain: "example.com:443"'),
        (tuple(f"h{i}.example.com" for i in range(11)), "more than 10 domains"),
    ],
)
def test_allow_lists_the_service_would_refuse_fail_before_sending(
    allow: tuple[str, ...], reason: str
) -> None:
    """Daytona's API takes IPv4 CIDRs only, at most 10, and FQDN-shaped domains
    (``network-validation.util.ts``): anything else is a ``ProviderConfigError`` here."""
    from sandstorm import NetworkPolicy, ProviderConfigError

    with pytest.raises(ProviderConfigError, match="allow") as caught:
        network_fields(NetworkPolicy(mode="allow_list", allow=allow))
    assert reason in str(caught.value)


def test_cgroup_parsing() -> None:
    text = (
        "== cpu.stat\nusage_usec 3000000\nuser_usec 2000000\nsystem_usec 1000000\n"
        "== memory.current\n1048576\n== memory.peak\n2097152\n"
        "== io.stat\n8:0 rbytes=4096 wbytes=8192 rios=1 wios=2\n== pids.current\n3\n"
    )
    figures = parse_cgroup(text)
    assert figures is not None
    assert figures.cpu_user_seconds == 2.0
    assert figures.cpu_system_seconds == 1.0
    assert figures.memory_current_bytes == 1048576
    assert figures.memory_peak_bytes == 2097152
    assert (figures.disk_read_bytes, figures.disk_write_bytes) == (4096, 8192)
    assert figures.process_count == 3
    assert parse_cgroup("nothing here") is None


def test_cgroup_v1_parsing() -> None:
    text = (
        "== cpuacct/cpuacct.stat\nuser 250\nsystem 50\n"
        "== memory/memory.usage_in_bytes\n4096\n== memory/memory.max_usage_in_bytes\n8192\n"
        "== blkio/blkio.throttle.io_service_bytes\n8:0 Read 100\n8:0 Write 300\nTotal 400\n"
        "== pids/pids.current\n2\n== CLK_TCK\n100\n"
    )
    figures = parse_cgroup(text)
    assert figures is not None
    assert (figures.cpu_user_seconds, figures.cpu_system_seconds) == (2.5, 0.5)
    assert (figures.memory_current_bytes, figures.memory_peak_bytes) == (4096, 8192)
    assert (figures.disk_read_bytes, figures.disk_write_bytes) == (100, 300)
    assert figures.process_count == 2


def test_unreadable_cgroup_files_are_not_zeros() -> None:
    # headers without numbers (files that exist but cannot be read) are "unknown", not 0
    assert parse_cgroup("== cpuacct/cpuacct.stat\n== memory/memory.usage_in_bytes\n") is None
    assert parse_cgroup("== cpu.stat\n== memory.current\n") is None


def test_cgroup_script_reads_this_machine() -> None:
    import subprocess

    from sandstorm_daytona._cgroup import CGROUP_SCRIPT

    done = subprocess.run(["sh", "-c", CGROUP_SCRIPT], capture_output=True, text=True, check=True)
    figures = parse_cgroup(done.stdout)
    if figures is None:
        pytest.skip("this machine exposes no cgroup accounting to its own processes")
    assert figures.cpu_user_seconds + figures.cpu_system_seconds > 0
    assert figures.memory_current_bytes > 0
