"""Exit-path scenarios: a real program using a provider ends in each way a program can end.

Each scenario is a small script run as a real subprocess; the test sends it the real
signal (or lets it end on its own) and then checks, with its own view of the backend,
that nothing the program created is left. ``run_exit_scenario`` returns what the
program printed and its exit status::

    outcome = run_exit_scenario("sigterm_async", "local", {"root": str(tmp_path)})
    assert outcome.returncode == 143 and "Traceback" not in outcome.stderr

Scenarios (``EXIT_SCENARIOS``): Ctrl-C under ``asyncio.run``; ``loop.close()`` with
tasks pending; SIGTERM to an asyncio program and to a blocking one (also one whose own
SIGTERM handler, installed first, must still be the one that decides); Ctrl-C to a blocking
program; interpreter exit without ``close()`` (blocking and async); an exception inside
``async with`` and ``with``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass
from typing import Any

__all__ = ["EXIT_SCENARIOS", "ExitOutcome", "leave_behind", "run_exit_scenario"]

_PRELUDE = """
import asyncio, json, sys, threading, time
import sandstorm

NAME = sys.argv[1]
CONFIG = json.loads(sys.argv[2])
SLEEP = "import time\\nprint('up', flush=True)\\ntime.sleep(120)"
N = 3
_up = 0
_lock = threading.Lock()

def up(_text):
    global _up
    with _lock:
        _up += 1
        if _up == N:
            print("ready", flush=True)

def aprovider():
    return sandstorm.get_async_provider(NAME, **CONFIG)

def sprovider():
    return sandstorm.get_provider(NAME, **CONFIG)

def worker(p):
    try:
        p.run(SLEEP, timeout=300, on_stdout=up)
    except sandstorm.ProviderUnavailable:
        pass  # the process is ending: its provider was closed under this call
"""

EXIT_SCENARIOS: dict[str, tuple[str, int | None, tuple[int, ...]]] = {
    # name: (script body, signal the test sends (None: none), accepted exit statuses)
    "ctrl_c_asyncio_run": (
        """
        async def main():
            async with aprovider() as p:
                await asyncio.gather(*(p.run(SLEEP, timeout=300, on_stdout=up) for _ in range(N)))
        try:
            asyncio.run(main())
        except KeyboardInterrupt:
            sys.exit(130)
        """,
        signal.SIGINT,
        (130,),
    ),
    "ctrl_c_asyncio_run_unclosed": (
        """
        async def main():
            p = aprovider()
            await asyncio.gather(*(p.run(SLEEP, timeout=300, on_stdout=up) for _ in range(N)))
        try:
            asyncio.run(main())
        except KeyboardInterrupt:
            sys.exit(130)
        """,
        signal.SIGINT,
        (130,),
    ),
    "loop_close_pending": (
        """
        p = aprovider()
        loop = asyncio.new_event_loop()
        async def handle():
            async with p.sandbox() as box:
                await box.run(SLEEP, timeout=300, on_stdout=up)
        tasks = [loop.create_task(p.run(SLEEP, timeout=300, on_stdout=up)) for _ in range(N - 1)]
        tasks.append(loop.create_task(handle()))
        async def until_ready():
            while _up < N:
                await asyncio.sleep(0.05)
        loop.run_until_complete(until_ready())
        loop.close()
        print("closed", flush=True)
        """,
        None,
        (0,),
    ),
    "sigterm_asyncio": (
        """
        async def main():
            async with aprovider() as p:
                await asyncio.gather(*(p.run(SLEEP, timeout=300, on_stdout=up) for _ in range(N)))
        asyncio.run(main())
        """,
        signal.SIGTERM,
        (143,),
    ),
    "sigterm_sync": (
        """
        p = sprovider()
        box = p.sandbox().__enter__()
        threads = [threading.Thread(target=worker, args=(p,), daemon=True) for _ in range(N - 1)]
        for t in threads:
            t.start()
        box.run(SLEEP, timeout=300, on_stdout=up)
        """,
        signal.SIGTERM,
        (143,),
    ),
    "sigterm_app_handler_chained": (
        """
        import signal
        def on_term(signum, frame):  # the application's own handler, installed first
            raise SystemExit(7)
        signal.signal(signal.SIGTERM, on_term)
        p = sprovider()
        box = p.sandbox().__enter__()
        threads = [threading.Thread(target=worker, args=(p,), daemon=True) for _ in range(N - 1)]
        for t in threads:
            t.start()
        box.run(SLEEP, timeout=300, on_stdout=up)
        """,
        signal.SIGTERM,
        (7,),
    ),
    "ctrl_c_sync": (
        """
        with sprovider() as p:
            try:
                with p.sandbox() as box:
                    threads = [threading.Thread(target=worker, args=(p,), daemon=True)
                               for _ in range(N - 1)]
                    for t in threads:
                        t.start()
                    box.run(SLEEP, timeout=300, on_stdout=up)
            except KeyboardInterrupt:
                print("interrupted", flush=True)
        sys.exit(130)
        """,
        signal.SIGINT,
        (130,),
    ),
    "no_close_sync": (
        """
        p = sprovider()
        p.run("print(1)")
        p.create_workspace(persistent=False)
        p.sandbox().__enter__().run("print(2)")
        print("ready", flush=True)
        """,
        None,
        (0,),
    ),
    "no_close_async": (
        """
        async def main():
            p = aprovider()
            await p.run("print(1)")
            await p.create_workspace(persistent=False)
            box = await p.sandbox().__aenter__()
            await box.run("print(2)")
            print("ready", flush=True)
        asyncio.run(main())
        """,
        None,
        (0,),
    ),
    "exception_in_async_with": (
        """
        async def main():
            async with aprovider() as p:
                async with p.sandbox() as box:
                    await box.run("print(1)")
                    await p.create_workspace(persistent=False)
                    raise RuntimeError("the application failed")
        try:
            asyncio.run(main())
        except RuntimeError:
            sys.exit(3)
        """,
        None,
        (3,),
    ),
    "exception_in_with": (
        """
        try:
            with sprovider() as p:
                with p.sandbox() as box:
                    box.run("print(1)")
                    p.create_workspace(persistent=False)
                    raise RuntimeError("the application failed")
        except RuntimeError:
            sys.exit(3)
        """,
        None,
        (3,),
    ),
}


@dataclass(frozen=True)
class ExitOutcome:
    """What the scenario's process did."""

    returncode: int
    stdout: str
    stderr: str


def run_exit_scenario(
    name: str,
    provider: str,
    config: dict[str, Any],
    *,
    ready_timeout: float = 60.0,
    exit_timeout: float = 90.0,
    env: dict[str, str] | None = None,
) -> ExitOutcome:
    """Run scenario ``name`` against ``provider`` built from ``config``; return its outcome.

    The signal of the scenario (if any) is sent once the program printed ``ready``.
    """
    body, sig, _ = EXIT_SCENARIOS[name]
    script = _PRELUDE + textwrap.dedent(body)
    process = subprocess.Popen(
        [sys.executable, "-c", script, provider, json.dumps(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )
    assert process.stdout is not None
    lines: list[str] = []
    try:
        if sig is not None:
            deadline = time.monotonic() + ready_timeout
            while time.monotonic() < deadline:
                line = process.stdout.readline()
                if not line:
                    break
                lines.append(line)
                if line.strip() == "ready":
                    time.sleep(0.2)
                    process.send_signal(sig)
                    break
        out, err = process.communicate(timeout=exit_timeout)
    except BaseException:
        process.kill()
        process.communicate()
        raise
    return ExitOutcome(process.returncode, "".join(lines) + out, err)


_CRASH = """
import json, os, sys
import sandstorm
p = sandstorm.get_provider(sys.argv[1], **json.loads(sys.argv[2]))
bound = p.create_workspace(persistent=False, labels={"purpose": "leak"})
kept = p.create_workspace(persistent=True, labels={"purpose": "leak"})
print(json.dumps({"bound": bound.id, "persistent": kept.id}), flush=True)
os.kill(os.getpid(), 9)
"""


def leave_behind(provider: str, config: dict[str, Any], timeout: float = 60.0) -> dict[str, str]:
    """Run a process that creates two workspaces and is killed with SIGKILL before it ends.

    Returns their ids: ``"bound"`` (``persistent=False``) and ``"persistent"``. Nothing
    in that process could clean up: what a reaper is for.
    """
    done = subprocess.run(
        [sys.executable, "-c", _CRASH, provider, json.dumps(config)],
        check=False,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=os.environ.copy(),
    )
    assert done.returncode == -signal.SIGKILL, done.stderr
    ids: dict[str, str] = json.loads(done.stdout)
    return ids
