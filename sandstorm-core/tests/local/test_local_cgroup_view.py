"""The code's own view of its workspace's cgroups, read-only at /sys/fs/cgroup.

Like a container runtime, the local sandbox binds the workspace's cgroup directories
(v1 ``memory``/``cpuacct``/``pids``/..., the v2 one at ``unified`` on hybrid hosts or as
the root on pure v2 hosts) so code reads its own accounting and limits, never the host's
or another workspace's, and can change none of it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

import pytest

import sandstorm
from sandstorm.local import LocalProvider

MIB = 1 << 20

READ = r"""
import json, os
root = "/sys/fs/cgroup"
def num(path):
    try:
        with open(os.path.join(root, path)) as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None
def keyed(path):
    try:
        with open(os.path.join(root, path)) as f:
            return {k: int(v) for k, v in (line.split() for line in f if line.strip())}
    except (OSError, ValueError):
        return None
v2 = "unified/" if os.path.isdir(os.path.join(root, "unified")) else ""
print(json.dumps({
    "entries": sorted(os.listdir(root)),
    "v1_usage": num("memory/memory.usage_in_bytes"),
    "v1_peak": num("memory/memory.max_usage_in_bytes"),
    "v1_limit": num("memory/memory.limit_in_bytes"),
    "v1_cpu_ns": num("cpuacct/cpuacct.usage"),
    "v1_cpu_user_ns": num("cpuacct/cpuacct.usage_user"),
    "v1_cpu_stat": keyed("cpuacct/cpuacct.stat"),
    "v1_pids": num("pids/pids.current"),
    "v2_cpu": keyed(v2 + "cpu.stat"),
    "v2_memory": num(v2 + "memory.current"),
    "v2_peak": num(v2 + "memory.peak"),
    "v2_limit": (open(os.path.join(root, v2 + "memory.max")).read().strip()
                 if os.path.exists(os.path.join(root, v2 + "memory.max")) else None),
}))
"""

WORK = """
import time
x = bytearray(96 << 20)
for i in range(0, len(x), 4096):
    x[i] = 1
t = time.process_time()
while time.process_time() - t < 0.6:
    pass
"""


def _host_cgroup_mounts() -> list[str]:
    with open("/proc/self/mounts") as f:
        return [line for line in f if line.split()[1].startswith("/sys/fs/cgroup")]


@pytest.fixture(scope="module", autouse=True)
def host_mounts_untouched() -> Iterator[None]:
    """The host's mounts at /sys/fs/cgroup are the same after the module as before it.

    (Only there: other work on this machine may mount and unmount elsewhere meanwhile.)
    """
    before = _host_cgroup_mounts()
    yield
    assert _host_cgroup_mounts() == before


@pytest.fixture
def viewed(local_impl: LocalProvider) -> None:
    report = local_impl.isolation_report()
    if not (report.is_active("mountns") and report.is_active("cgroup_memory")):
        pytest.skip(f"no mount namespace or cgroup accounting here: {report.unavailable}")


def look(lp: sandstorm.SyncProvider, ws: sandstorm.Workspace | None = None) -> dict[str, Any]:
    """What the code reads at /sys/fs/cgroup (in ``ws``, else in a one-shot run)."""
    result = lp.run(READ) if ws is None else lp.run_in_workspace(ws, READ)
    assert result.exit_code == 0, result.stderr
    view: dict[str, Any] = json.loads(result.stdout)
    return view


def peak(view: dict[str, Any]) -> int:
    value = view["v1_peak"] if view["v1_peak"] is not None else view["v2_peak"]
    assert isinstance(value, int), view
    return value


def cpu_seconds(view: dict[str, Any]) -> float:
    """cpu time (user + system), the smaller figure when both v1 and v2 account it."""
    sources = []
    if view["v1_cpu_ns"] is not None:
        sources.append(view["v1_cpu_ns"] / 1e9)
    if view["v2_cpu"] is not None:
        sources.append(view["v2_cpu"]["usage_usec"] / 1e6)
    assert sources, view
    return min(sources)


def is_v1(view: dict[str, Any]) -> bool:
    return view["v1_usage"] is not None


@pytest.mark.usefixtures("viewed")
def test_code_reads_its_own_memory_and_cpu_accumulated_across_runs(
    lp: sandstorm.SyncProvider,
) -> None:
    ws = lp.create_workspace(memory=384)
    before = look(lp, ws)
    assert peak(before) < 64 * MIB
    assert cpu_seconds(before) < 0.3
    assert lp.run_in_workspace(ws, WORK).exit_code == 0
    after = look(lp, ws)
    # the work ran in an earlier run: the workspace's accounting spans its runs
    assert peak(after) >= 96 * MIB
    assert cpu_seconds(after) >= 0.5
    if is_v1(after):
        assert after["v1_limit"] == 384 * MIB
        assert {"memory", "cpuacct", "pids"} <= set(after["entries"])
        assert after["v1_pids"] is not None
        assert after["v1_pids"] >= 1
        stat = after["v1_cpu_stat"]
        assert stat is not None
        assert stat["user"] + stat["system"] >= 40
        assert after["v1_cpu_user_ns"] > 0
        assert after["v1_usage"] <= after["v1_peak"]
    else:
        assert after["v2_limit"] == str(384 * MIB)
    # the host reads the same cgroups
    host = lp.get_workspace_metrics(ws)
    assert host.memory_peak_bytes >= peak(after)
    assert host.cpu_seconds >= cpu_seconds(after) - 0.02


@pytest.mark.usefixtures("viewed")
def test_a_second_workspace_sees_its_own_cgroups(lp: sandstorm.SyncProvider) -> None:
    first = lp.create_workspace(memory=512)
    second = lp.create_workspace(memory=256)
    assert lp.run_in_workspace(first, WORK).exit_code == 0
    seen_first = look(lp, first)
    seen_second = look(lp, second)
    assert peak(seen_first) >= 96 * MIB
    assert peak(seen_second) < 64 * MIB
    assert cpu_seconds(seen_second) < 0.3
    if is_v1(seen_second):
        assert (seen_first["v1_limit"], seen_second["v1_limit"]) == (512 * MIB, 256 * MIB)
    else:
        assert (seen_first["v2_limit"], seen_second["v2_limit"]) == (
            str(512 * MIB),
            str(256 * MIB),
        )


@pytest.mark.usefixtures("viewed")
def test_a_one_shot_run_starts_from_zero(lp: sandstorm.SyncProvider) -> None:
    # one-shot runs reuse reset cgroups: nothing of the earlier run shows
    assert lp.run(WORK).exit_code == 0
    view = look(lp)
    assert peak(view) < 64 * MIB
    assert cpu_seconds(view) < 0.3
    if is_v1(view):
        assert view["v1_cpu_stat"] is not None
        assert sum(view["v1_cpu_stat"].values()) < 30


@pytest.mark.usefixtures("viewed")
def test_the_view_holds_nothing_of_the_host(lp: sandstorm.SyncProvider) -> None:
    code = r"""
import os
found = []
for top, dirs, files in os.walk("/sys/fs/cgroup"):
    found += [d for d in dirs if d.startswith("sandstorm-") or d.startswith("ws-")]
print(len(found), sorted(os.listdir("/sys/fs/cgroup")))
"""
    ws = lp.create_workspace()
    result = lp.run_in_workspace(ws, code)
    assert result.exit_code == 0, result.stderr
    count, entries = result.stdout.split(" ", 1)
    assert count == "0"
    host = set(os.listdir("/sys/fs/cgroup"))
    shown = set(json.loads(entries.replace("'", '"')))
    # only accounting hierarchies, never devices/freezer/cpuset/systemd
    assert shown <= {"memory", "cpu", "cpuacct", "pids", "blkio", "unified"} or "cpu.stat" in shown
    assert not {"devices", "freezer", "cpuset", "systemd"} & shown
    assert shown != host


WRITES = r"""
import errno, os
root = "/sys/fs/cgroup"
targets = []
for top, dirs, files in os.walk(root):
    targets += [os.path.join(top, f) for f in files]
failures, succeeded = 0, []
for path in targets:
    try:
        fd = os.open(path, os.O_WRONLY)
    except OSError as exc:
        assert exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM), (path, exc)
        failures += 1
    else:
        os.close(fd)
        succeeded.append(path)
for name in (os.path.join(root, "escape"), os.path.join(root, "memory", "escape"),
             os.path.join(root, "unified", "escape")):
    try:
        os.mkdir(name)
    except OSError as exc:
        assert exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOENT), (name, exc)
    else:
        succeeded.append(name)
print(failures, succeeded)
"""


@pytest.mark.usefixtures("viewed")
@pytest.mark.parametrize("language", ["python", "shell"])
def test_nothing_in_the_view_is_writable(lp: sandstorm.SyncProvider, language: str) -> None:
    ws = lp.create_workspace(memory=256)
    if language == "python":
        result = lp.run_in_workspace(ws, WRITES)
        assert result.exit_code == 0, result.stderr
        failures, succeeded = result.stdout.split(" ", 1)
        assert int(failures) > 20
        assert succeeded.strip() == "[]"
    else:
        script = (
            "for f in memory/memory.limit_in_bytes memory/cgroup.procs pids/pids.max "
            "unified/cgroup.kill unified/cgroup.procs memory.max cgroup.kill; do "
            '[ -e "/sys/fs/cgroup/$f" ] || continue; '
            'if (echo -1 > "/sys/fs/cgroup/$f") 2>/dev/null; then echo "wrote $f"; '
            'else echo "refused $f"; fi; done'
        )
        result = lp.run_in_workspace(ws, script, language="shell")
        assert result.exit_code == 0, result.stderr
        assert "wrote" not in result.stdout
        assert "refused" in result.stdout
    # the limits are still the ones the host set
    metrics = lp.get_workspace_metrics(ws)
    assert metrics.memory_limit_bytes == 256 * MIB
    bomb = "x = bytearray(400 << 20)\nfor i in range(0, len(x), 4096): x[i] = 1"
    outcome = lp.run_in_workspace(ws, bomb)
    assert outcome.reason == sandstorm.TerminationReason.MEMORY_LIMIT


@pytest.mark.usefixtures("viewed")
def test_the_view_can_be_turned_off(local_impl: LocalProvider, local_root: Any) -> None:
    if not local_impl.isolation_report().is_active("pivot_root"):
        pytest.skip("without a new root /sys stays the host's when the view is off")
    code = (
        "import os\n"
        "try:\n"
        "    print(open('/sys/fs/cgroup/memory/memory.usage_in_bytes').read().strip())\n"
        "except OSError as exc:\n"
        "    print('unreadable', exc.errno)\n"
    )
    with sandstorm.get_provider(
        "local", root=str(local_root / "no-view"), cgroup_view=False, prewarm=0
    ) as provider:
        result = provider.run(code)
    assert result.exit_code == 0, result.stderr
    # the sandbox's root holds an empty /sys/fs/cgroup unless the view is there
    assert result.stdout.strip() == "unreadable 2"


@pytest.mark.usefixtures("viewed")
def test_with_only_a_v2_hierarchy_its_directory_is_the_root(local_root: Any) -> None:
    # This host is hybrid; narrowing a provider's cgroups to the v2 hierarchy runs the
    # pure-v2 layout for real: the workspace's v2 directory bound at /sys/fs/cgroup itself.
    code = r"""
import errno, os, time
t = time.process_time()
while time.process_time() - t < 0.3:
    pass
entries = os.listdir("/sys/fs/cgroup")
stat = dict(line.split() for line in open("/sys/fs/cgroup/cpu.stat"))
try:
    open("/sys/fs/cgroup/cgroup.procs", "w").write("1")
    wrote = "yes"
except OSError as exc:
    wrote = errno.errorcode[exc.errno]
print("cgroup.procs" in entries, int(stat["usage_usec"]) >= 250_000, wrote)
"""
    with sandstorm.get_provider("local", root=str(local_root / "v2-only"), prewarm=0) as provider:
        impl = provider.async_provider
        assert isinstance(impl, LocalProvider)
        assert provider.run("print(1)").stdout == "1\n"
        engine = impl._engine
        assert engine is not None
        if engine.cgroups._v2 is None:
            pytest.skip("no cgroup v2 hierarchy here")
        v1 = dict(engine.cgroups._v1)
        engine.cgroups._v1.clear()
        try:
            ws = provider.create_workspace()
            result = provider.run_in_workspace(ws, code)
            assert result.exit_code == 0, result.stderr
            assert result.stdout.split() == ["True", "True", "EROFS"]
            provider.delete_workspace(ws)
        finally:
            engine.cgroups._v1.update(v1)
