"""The escape suite: hostile code in the local sandbox, and proof the host is unaffected.

Each test runs real attack code on the real engine, then checks the host side: processes,
files, memory, network, signals. Nothing here talks to anything but 127.0.0.1.
"""

from __future__ import annotations

import os
import resource
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import sandstorm
from sandstorm import ExecutionTimeout, TerminationReason
from sandstorm.local import LocalProvider


def _mem_available() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) << 10
    raise AssertionError("no MemAvailable in /proc/meminfo")


@pytest.fixture
def host_sleeper() -> Iterator[subprocess.Popen[bytes]]:
    """A host process running as the sandbox's own uid (65534 when root), for signal/ptrace."""
    kwargs: dict[str, int] = {}
    if os.geteuid() == 0:
        kwargs = {"user": 65534, "group": 65534}
    proc = subprocess.Popen(["sleep", "120"], **kwargs)  # type: ignore[call-overload]
    yield proc
    proc.kill()
    proc.wait()


def test_escape_fork_bomb(
    local_root: Path, no_leftovers: str, find_processes: Callable[[str], list[int]]
) -> None:
    with sandstorm.get_provider("local", root=str(local_root / "bomb"), pids_limit=128) as lp:
        code = (
            "import os, sys\n"
            f"sys.argv[0] = '{no_leftovers}'\n"
            "while True:\n"
            "    try:\n"
            "        os.fork()\n"
            "    except OSError:\n"
            "        pass\n"
        )
        started = time.monotonic()
        with pytest.raises(ExecutionTimeout):
            lp.run(code, timeout=2)
        assert time.monotonic() - started < 4
    assert subprocess.run(["true"], check=False).returncode == 0
    assert find_processes(no_leftovers) == []


def test_escape_memory_bomb(lp: sandstorm.SyncProvider, local_impl: LocalProvider) -> None:
    if not local_impl.isolation_report().is_active("cgroup_memory"):
        pytest.skip("no memory cgroup on this host")
    available = _mem_available()
    own_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    ws = lp.create_workspace(memory=256)
    bomb = "x = []\nwhile True: x.append(b'x' * (16 << 20))"
    result = lp.run_in_workspace(ws, bomb, timeout=30)
    assert result.reason is TerminationReason.MEMORY_LIMIT
    assert lp.get_workspace_metrics(ws).memory_peak_bytes <= 260 << 20
    # other work shares this machine: only a loose bound on the host's free memory
    assert _mem_available() > available - (1 << 30)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - own_rss < 40 << 10


def test_escape_disk_fill(lp: sandstorm.SyncProvider, local_root: Path) -> None:
    free = shutil.disk_usage(local_root).free
    ws = lp.create_workspace(disk=40)
    fill = (
        "import os\n"
        "i = 0\n"
        "while True:\n"
        "    with open(f'fill{i}', 'wb') as f: f.write(os.urandom(1 << 20))\n"
        "    i += 1\n"
    )
    result = lp.run_in_workspace(ws, fill, timeout=30)
    assert result.reason is TerminationReason.DISK_LIMIT
    # checked every 0.1 s: the overshoot is bounded by the write rate in that window
    assert lp.get_workspace_metrics(ws).disk_used_bytes < (40 + 64) << 20
    tmp = lp.run_in_workspace(
        ws,
        "import os\ntry:\n    open('/tmp/fill', 'wb').write(b'x' * (1 << 30))\n"
        "except OSError as exc:\n    print(exc.errno)",
        timeout=30,
    )
    assert tmp.stdout.strip() in {"28", "27"}  # ENOSPC on the private tmpfs, or EFBIG
    assert shutil.disk_usage(local_root).free > free - (120 << 20)
    lp.delete_workspace(ws)


def test_escape_gigabyte_output(lp: sandstorm.SyncProvider) -> None:
    lp.run("pass")
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.monotonic()
    result = lp.run(
        "import sys\nchunk = 'x' * (1 << 20)\nfor _ in range(1024): sys.stdout.write(chunk)"
    )
    assert time.monotonic() - started < 10
    assert result.reason is TerminationReason.OUTPUT_LIMIT
    assert result.stdout_truncated
    assert (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) < 40 << 10


def test_escape_tcp_to_host_loopback(lp: sandstorm.SyncProvider) -> None:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    server.settimeout(0.1)
    port = server.getsockname()[1]
    try:
        result = lp.run(
            "import socket\n"
            "for host in ('127.0.0.1', 'localhost', '::1'):\n"
            "    try:\n"
            f"        socket.create_connection((host, {port}), timeout=2)\n"
            "        print('connected', host)\n"
            "    except OSError as exc:\n"
            "        print('refused', host)\n"
        )
        assert "connected" not in result.stdout
        assert result.stdout.count("refused") == 3
        with pytest.raises(TimeoutError):
            server.accept()
    finally:
        server.close()


def test_escape_dns_lookup(lp: sandstorm.SyncProvider) -> None:
    result = lp.run(
        "import socket\n"
        "for name in ('example.com', 'pypi.org'):\n"
        "    try:\n"
        "        print('resolved', socket.getaddrinfo(name, 443)[0][4])\n"
        "    except OSError as exc:\n"
        "        print('failed', name)\n"
    )
    assert "resolved" not in result.stdout
    assert result.stdout.count("failed") == 2


def test_escape_read_root_only_file(lp: sandstorm.SyncProvider, local_root: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("root-only files are only a question when the host runs as root")
    secret = local_root / "root-only-secret"
    secret.write_text("top secret")
    secret.chmod(0o600)
    os.chmod(local_root, 0o755)
    result = lp.run(
        "for path in ('/etc/shadow', " + repr(str(secret)) + ", '/root/.bashrc'):\n"
        "    try:\n"
        "        print('read', path, open(path).read()[:10])\n"
        "    except OSError as exc:\n"
        "        print('denied', type(exc).__name__)\n"
    )
    assert "read" not in result.stdout
    assert "top secret" not in result.stdout
    assert result.stdout.count("denied") == 3


def test_escape_other_workspace_files(lp: sandstorm.SyncProvider) -> None:
    victim = lp.create_workspace()
    lp.run_in_workspace(victim, "open('private.txt', 'w').write('victim data')")
    attacker = lp.create_workspace()
    result = lp.run_in_workspace(
        attacker,
        "import os, glob\n"
        "here = os.getcwd()\n"
        "base = os.path.dirname(os.path.dirname(here))\n"
        "print(sorted(os.listdir(base)))\n"
        f"print(glob.glob(os.path.join(base, '*', 'files', '*')))\n"
        f"print(os.path.exists(os.path.join(base, {victim.id!r})))\n",
    )
    assert victim.id not in result.stdout
    assert "victim data" not in result.stdout


def test_escape_read_host_environment(local_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SANDSTORM_ESCAPE_API_KEY", "sk-live-do-not-leak")
    with sandstorm.get_provider("local", root=str(local_root / "envesc")) as lp:
        result = lp.run(
            "import os, glob\n"
            "print(dict(os.environ))\n"
            "for path in glob.glob('/proc/*/environ'):\n"
            "    try:\n"
            "        print(open(path, 'rb').read())\n"
            "    except OSError:\n"
            "        pass\n"
        )
    assert "sk-live-do-not-leak" not in result.stdout
    assert "SANDSTORM_ESCAPE_API_KEY" not in result.stdout


def test_escape_signal_host_pid(
    lp: sandstorm.SyncProvider, host_sleeper: subprocess.Popen[bytes]
) -> None:
    pid = host_sleeper.pid
    result = lp.run(
        "import os, signal\n"
        f"for target in ({pid}, -{pid}, 1, -1):\n"
        "    try:\n"
        "        os.kill(target, signal.SIGKILL)\n"
        "        print('sent', target)\n"
        "    except OSError as exc:\n"
        "        print('failed', target, type(exc).__name__)\n"
    )
    assert f"sent {pid}" not in result.stdout
    assert host_sleeper.poll() is None, "the host process was killed from the sandbox"
    os.kill(pid, 0)


def test_escape_write_outside_workspace(lp: sandstorm.SyncProvider, local_root: Path) -> None:
    marker = f"escape-{os.urandom(4).hex()}"
    targets = [
        f"/tmp/{marker}",
        f"/var/tmp/{marker}",
        f"/dev/shm/{marker}",
        f"/etc/{marker}",
        f"/{marker}",
        str(local_root / marker),
        f"/root/{marker}",
    ]
    result = lp.run(
        "import os\n"
        f"for path in {targets!r}:\n"
        "    try:\n"
        "        open(path, 'w').write('pwned')\n"
        "        print('wrote', path)\n"
        "    except OSError as exc:\n"
        "        print('denied', path, exc.errno)\n"
    )
    for path in targets:
        assert not os.path.exists(path), f"{path} appeared on the host\n{result.stdout}"
    # writes to the private scratch dirs succeed inside but never reach the host
    assert f"wrote /tmp/{marker}" in result.stdout


def test_escape_detached_grandchild_outlives_timeout(
    lp: sandstorm.SyncProvider,
    no_leftovers: str,
    find_processes: Callable[[str], list[int]],
) -> None:
    code = (
        "import os, time\n"
        "if os.fork() == 0:\n"
        "    os.setsid()\n"
        "    if os.fork() == 0:\n"
        "        os.closerange(0, 3)\n"
        f"        os.execv('/bin/sleep', ['sleep', '600', '{no_leftovers}'])\n"
        "    os._exit(0)\n"
        "time.sleep(60)\n"
    )
    with pytest.raises(ExecutionTimeout):
        lp.run(code, timeout=1)
    time.sleep(0.1)
    assert find_processes(no_leftovers) == []


def test_escape_ptrace_other_process(
    lp: sandstorm.SyncProvider, host_sleeper: subprocess.Popen[bytes]
) -> None:
    pid = host_sleeper.pid
    result = lp.run(
        "import ctypes, os, time\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        "PTRACE_ATTACH = 16\n"
        "child = os.fork()\n"
        "if child == 0:\n"
        "    time.sleep(5); os._exit(0)\n"
        f"for target in ({pid}, 1, child):\n"
        "    rc = libc.ptrace(PTRACE_ATTACH, target, None, None)\n"
        "    print(target == child and 'child' or target, rc, ctypes.get_errno())\n"
        "os.kill(child, 9)\n"
    )
    lines = result.stdout.split("\n")
    assert all(line.split()[1] == "-1" for line in lines if line), result.stdout
    status = Path(f"/proc/{pid}/status").read_text()
    assert "TracerPid:\t0" in status
    assert host_sleeper.poll() is None
    state = next(line for line in status.splitlines() if line.startswith("State:"))
    assert "t (tracing stop)" not in state
    assert "T (stopped)" not in state
    os.kill(pid, signal.SIGCONT)
