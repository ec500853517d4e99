"""Run a command as a child subreaper, and kill whatever it leaves behind when it ends.

The kit's self-tests run deliberately broken providers (kit_mutants.py, crippledproviders.py)
in nested pytest runs; a broken provider may leave processes running (a timeout that kills
only the child, a hang that makes the kit abandon its event loop mid-kill, leaving a
SIGSTOPped process). So a nested run is started through this script::

    python reaper.py TIMEOUT -- ARGV...

It marks itself ``PR_SET_CHILD_SUBREAPER``, so every process of the run that loses its
parent (a ``setsid`` daemon included) is re-parented to it instead of to init. When ARGV
exits, or after TIMEOUT seconds (0: none; then it exits 124), everything still below it
is SIGKILLed (which also ends stopped processes) and reaped. It exits with ARGV's status
and names on stderr what it had to kill. Linux only.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

__all__ = ["TIMED_OUT", "command", "reap"]

PR_SET_CHILD_SUBREAPER = 36
TIMED_OUT = 124
"""The exit status when the command ran out of time (as timeout(1))."""


def command(*argv: str | os.PathLike[str], timeout: float = 0) -> list[str]:
    """The argv that runs ``argv`` under the reaper (``timeout`` seconds, 0: unbounded)."""
    return [sys.executable, __file__, str(timeout), "--", *map(os.fspath, argv)]


def _children_table() -> dict[int, int]:
    """``pid -> ppid`` of every live process."""
    table = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                raw = Path(f"/proc/{entry.name}/stat").read_bytes()
            except OSError:
                continue
            fields = raw[raw.rfind(b")") + 2 :].split()
            table[int(entry.name)] = int(fields[1])
    return table


def _descendants(root: int) -> set[int]:
    table = _children_table()
    found: set[int] = set()
    frontier = {root}
    while frontier:
        frontier = {pid for pid, ppid in table.items() if ppid in frontier} - found
        found |= frontier
    return found


def _describe(pid: int) -> str:
    try:
        args = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return str(pid)
    return f"{pid} [{state}] {' '.join(args.split())[:120]}"


def reap() -> list[str]:
    """SIGKILL every descendant of this process and reap them; describe the live ones."""
    killed: dict[int, str] = {}
    while True:
        for pid in _descendants(os.getpid()):
            if pid not in killed:
                killed[pid] = _describe(pid)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)  # ends stopped (T) processes too
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            break  # no child left: as a subreaper, no descendant either
        if pid == 0:
            time.sleep(0.01)
    return [what for what in killed.values() if "[Z]" not in what]


def _wait(proc: subprocess.Popen[bytes], timeout: float | None) -> int:
    """Wait for ``proc``, reaping the orphans re-parented here meanwhile (as init would)."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        info = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        if info is not None and info.si_pid != proc.pid:
            os.waitpid(info.si_pid, 0)
        elif info is not None:
            return proc.wait()
        elif deadline is not None and time.monotonic() > deadline:
            raise subprocess.TimeoutExpired(proc.args, timeout or 0)
        else:
            time.sleep(0.05)


def main(args: list[str]) -> int:
    timeout, sep, *argv = args
    if sep != "--" or not argv:
        raise SystemExit("usage: reaper.py TIMEOUT -- ARGV...")
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER)")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    proc = subprocess.Popen(argv)
    try:
        code = _wait(proc, float(timeout) or None)
    except subprocess.TimeoutExpired:
        print(f"reaper: {argv[0]} did not finish within {timeout} s", file=sys.stderr)
        code = TIMED_OUT
    finally:
        left = reap()
        if left:
            print(f"reaper: killed {len(left)} leftover process(es):", file=sys.stderr)
            for what in left:
                print(f"reaper:   {what}", file=sys.stderr)
    return code if code >= 0 else 128 - code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
