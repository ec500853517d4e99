"""Run semantics: languages, streams, stdin, env, exit codes, encodings, output caps, timeouts."""

from __future__ import annotations

import math
import signal
import time

import anyio
import pytest

from sandstorm import (
    DEFAULT_OUTPUT_CAP,
    AsyncProvider,
    Capability,
    ExecutionTimeout,
    Language,
    TerminationReason,
    Workspace,
)

from ._base import AsyncContract, WorkspaceFactory
from ._helpers import MIB, code, show

__all__ = ["HELLO_WORLD", "ProviderContract", "TimeoutContract"]

HELLO_WORLD: dict[str, tuple[str, str]] = {
    Language.PYTHON: ('print("Hello, World!")', "Hello, World!\n"),
    Language.JAVASCRIPT: ('console.log("Hello, World!");', "Hello, World!\n"),
    Language.TYPESCRIPT: (
        'const greeting: string = "Hello, World!";\nconsole.log(greeting);',
        "Hello, World!\n",
    ),
    Language.SHELL: ('echo "Hello, World!"', "Hello, World!\n"),
}
"""Per language: a program and the exact stdout it must produce."""

EVERY_PLANE = "".join(
    chr(cp)
    for cp in (
        0x41,
        0xE9,
        0x4E2D,
        0xFFFD,  # plane 0: ASCII, Latin-1, CJK, replacement char
        0x1F600,
        0x1D11E,  # plane 1: emoji, musical symbol
        0x20000,
        0x2A6D6,  # plane 2: CJK extension B
        0x30000,  # plane 3: CJK extension G
        0xE0041,  # plane 14: tag character
        0xF0000,  # plane 15: private use
        0x10FFFD,  # plane 16: private use, the last valid scalar value
    )
)
"""One or more characters from every Unicode plane that has assigned characters."""


def _require_language(provider: AsyncProvider, language: str) -> None:
    if language not in provider.languages:
        pytest.skip(f"{provider.name} does not declare language {language}")


class ProviderContract(AsyncContract):
    """What every provider must do: run code and report exactly what it did."""

    output_flood_bytes: int = 64 * MIB
    """Bytes the flood test writes; the provider's output cap must be smaller."""
    output_cap: int | None = DEFAULT_OUTPUT_CAP
    """Bytes of a stream the provider keeps by default (``None``: not checked)."""

    async def test_declaration_is_consistent(self, provider: AsyncProvider) -> None:
        info = type(provider).info()
        assert provider.name, "a provider needs a non-empty `name`"
        assert info.name == provider.name
        assert set(provider.capabilities) <= set(Capability)
        assert provider.languages, "a provider must declare at least one language"
        assert Language.PYTHON in provider.languages, "the contract drives providers with python"
        assert info.capabilities == {str(cap) for cap in provider.capabilities}

    async def test_is_available(self, provider: AsyncProvider) -> None:
        assert await provider.is_available() is True

    @pytest.mark.parametrize("language", list(HELLO_WORLD))
    async def test_hello_world(self, provider: AsyncProvider, language: str) -> None:
        _require_language(provider, language)
        program, expected = HELLO_WORLD[language]
        result = await provider.run(program, language=language, timeout=60)
        assert result.exit_code == 0, show(result)
        assert result.stdout == expected, show(result)
        assert result.stderr == "", show(result)
        assert result.language == language
        assert result.provider == provider.name

    async def test_stdout_and_stderr_are_separate(self, provider: AsyncProvider) -> None:
        result = await provider.run(
            code(
                """
                import sys
                for i in range(3):
                    print(f"out{i}", flush=True)
                    print(f"err{i}", file=sys.stderr, flush=True)
                """
            )
        )
        assert result.stdout == "out0\nout1\nout2\n", show(result)
        assert result.stderr == "err0\nerr1\nerr2\n", show(result)
        assert not result.stdout_truncated
        assert not result.stderr_truncated

    async def test_stdin_text(self, provider: AsyncProvider) -> None:
        text = "line one\nzwei é 🎉\n"
        result = await provider.run(
            "import sys; sys.stdout.write(sys.stdin.read().upper())", stdin=text
        )
        assert result.stdout == text.upper(), show(result)

    async def test_stdin_bytes(self, provider: AsyncProvider) -> None:
        data = bytes(range(256)) * 4
        result = await provider.run(
            "import sys, hashlib; d = sys.stdin.buffer.read(); "
            "print(len(d), hashlib.sha256(d).hexdigest())",
            stdin=data,
        )
        import hashlib

        assert result.stdout == f"{len(data)} {hashlib.sha256(data).hexdigest()}\n", show(result)

    async def test_no_stdin_reads_end_of_file(self, provider: AsyncProvider) -> None:
        result = await provider.run("import sys; print(repr(sys.stdin.read()))", timeout=20)
        assert result.stdout == "''\n", show(result)

    async def test_env_reaches_code(self, provider: AsyncProvider) -> None:
        env = {
            "SSTK_PLAIN": "value",
            "SSTK_UNICODE": "é 🎉 中",
            "SSTK_SPACES": "a b  c",
            "SSTK_EMPTY": "",
        }
        result = await provider.run(
            "import os, json; print(json.dumps({k: os.environ.get(k) for k in "
            f"{sorted(env)!r}}}))",
            env=env,
        )
        import json

        assert result.exit_code == 0, show(result)
        assert json.loads(result.stdout) == env

    async def test_host_environment_does_not_leak(
        self, provider: AsyncProvider, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("SSTK_HOST_SECRET", "do-not-leak-4242")
        result = await provider.run("import os; print(os.environ.get('SSTK_HOST_SECRET'))")
        assert result.stdout == "None\n", show(result)

    @pytest.mark.parametrize("status", [0, 1, 255])
    async def test_exit_code(self, provider: AsyncProvider, status: int) -> None:
        result = await provider.run(f"import sys; print('bye'); sys.exit({status})")
        assert result.exit_code == status, show(result)
        assert result.ok is (status == 0)
        assert result.stdout == "bye\n"
        assert result.reason == TerminationReason.EXITED

    async def test_killed_by_signal(self, provider: AsyncProvider) -> None:
        result = await provider.run(
            "import os, signal; print('x', flush=True); os.kill(os.getpid(), signal.SIGKILL)"
        )
        assert not result.ok, show(result)
        assert result.reason == TerminationReason.SIGNALED, show(result)
        assert result.signal == signal.SIGKILL, show(result)
        assert result.stdout == "x\n"

    async def test_uncaught_exception_is_a_result(self, provider: AsyncProvider) -> None:
        result = await provider.run("raise RuntimeError('boom-7')")
        assert result.exit_code == 1, show(result)
        assert "RuntimeError: boom-7" in result.stderr

    async def test_unicode_from_every_plane(self, provider: AsyncProvider) -> None:
        # the characters travel literally inside the code, and back on both streams
        program = f'import sys\ns = "{EVERY_PLANE}"\nprint(s)\nprint(s[::-1], file=sys.stderr)'
        result = await provider.run(program)
        assert result.exit_code == 0, show(result)
        assert result.stdout == EVERY_PLANE + "\n"
        assert result.stderr == EVERY_PLANE[::-1] + "\n"

    async def test_control_characters_are_preserved(self, provider: AsyncProvider) -> None:
        data = "a\r\nb\rc\x00d\x1b[0m\te\x7f\n\n"
        result = await provider.run(f"import sys; sys.stdout.write({data!r})")
        assert result.stdout == data, show(result)

    async def test_multibyte_characters_split_across_writes(self, provider: AsyncProvider) -> None:
        text = "€🎉中é" * 20_000
        result = await provider.run(
            code(
                f"""
                import sys
                data = {text[:4]!r} * 20_000
                raw = data.encode()
                for i in range(0, len(raw), 7):
                    sys.stdout.buffer.write(raw[i:i + 7])
                    if i % 4093 == 0:
                        sys.stdout.buffer.flush()
                """
            )
        )
        assert not result.stdout_truncated, "a 1.3 MB output should fit under any sane cap"
        assert result.stdout == text

    async def test_arbitrary_bytes_in_output(self, provider: AsyncProvider) -> None:
        raw = bytes(range(256))
        result = await provider.run(
            "import sys; sys.stdout.buffer.write(bytes(range(256))); "
            "sys.stderr.buffer.write(bytes(range(255, -1, -1)))"
        )
        assert result.exit_code == 0, show(result)
        accepted = {
            raw.decode("utf-8", errors)
            for errors in ("replace", "surrogateescape", "backslashreplace")
        }
        assert result.stdout in accepted, (
            "undecodable bytes must be decoded with a standard error handler "
            f"(replace, surrogateescape or backslashreplace); got {result.stdout!r}"
        )
        assert result.stderr in {
            raw[::-1].decode("utf-8", errors)
            for errors in ("replace", "surrogateescape", "backslashreplace")
        }

    @pytest.mark.parametrize("stream", ["stdout", "stderr"])
    async def test_large_output_whole_or_truncated_prefix(
        self, provider: AsyncProvider, stream: str
    ) -> None:
        other = "stderr" if stream == "stdout" else "stdout"
        line = "0123456789abcdef" * 8 + "\n"
        count = (4 * MIB) // len(line)
        result = await provider.run(
            code(
                f"""
                import sys
                line = {line!r}
                out = sys.{stream}
                for _ in range({count}):
                    out.write(line)
                out.flush()
                print("small", file=sys.{other})
                """
            ),
            timeout=120,
        )
        expected = line * count
        got: str = getattr(result, stream)
        truncated: bool = getattr(result, f"{stream}_truncated")
        assert getattr(result, other) == "small\n", show(result)
        assert not getattr(result, f"{other}_truncated")
        if truncated:
            assert len(got) < len(expected)
            assert expected.startswith(got), "truncated output must be a prefix of the real output"
        else:
            assert result.exit_code == 0, show(result)
            assert got == expected

    async def test_output_flood_is_capped(self, provider: AsyncProvider) -> None:
        total = self.output_flood_bytes
        started = time.monotonic()
        result = await provider.run(
            code(
                f"""
                import sys
                chunk = b"x" * (1 << 20)
                for _ in range({total} >> 20):
                    sys.stdout.buffer.write(chunk)
                """
            ),
            timeout=120,
        )
        assert result.stdout_truncated, f"{total} bytes of output were returned uncapped"
        assert len(result.stdout) < total
        assert set(result.stdout) <= {"x"}
        assert time.monotonic() - started < 100
        # one meaning everywhere: past twice the cap the run is killed, as by SIGKILL
        assert result.reason == TerminationReason.OUTPUT_LIMIT, show(result)
        assert (result.exit_code, result.signal) == (137, 9), show(result)
        if self.output_cap is not None:
            assert len(result.stdout.encode()) == self.output_cap, len(result.stdout)

    @pytest.mark.parametrize("pad", ["a", "ab", "abc"])
    async def test_multibyte_character_across_the_cap(
        self, provider: AsyncProvider, pad: str
    ) -> None:
        # 3-byte characters after a 1-3 byte pad: one of the pads puts the cap inside a character
        cap = self.output_cap or 4 * MIB
        count = (cap + 3000) // 3
        expected = pad + "€" * count
        result = await provider.run(
            f"import sys; s = {pad!r} + '€' * {count}; sys.stdout.write(s); sys.stderr.write(s)",
            timeout=120,
        )
        for stream in ("stdout", "stderr"):
            got: str = getattr(result, stream)
            if not getattr(result, f"{stream}_truncated"):
                assert got == expected, f"{stream} is neither whole nor marked truncated"
                continue
            assert "\ufffd" not in got, (
                f"truncated {stream} ends in U+FFFD: decode only the whole characters of the "
                "kept bytes (the cap fell inside a multibyte character)"
            )
            assert expected.startswith(got), f"truncated {stream} is not a prefix of the output"
            if self.output_cap is not None:
                kept = len(got.encode())
                assert self.output_cap - 3 < kept <= self.output_cap, (stream, kept)

    async def test_result_fields(self, provider: AsyncProvider) -> None:
        result = await provider.run("import time; time.sleep(0.3); print('done')")
        assert result.provider == provider.name
        assert result.language == Language.PYTHON
        assert 0.3 <= result.duration < 60, result.duration
        assert math.isfinite(result.duration)
        assert result.reason == TerminationReason.EXITED
        assert result.signal is None
        if not provider.supports(Capability.COST):
            assert result.cost is None, "cost is reported only by providers that declare COST"

    async def test_run_in_workspace_reports_workspace(
        self, provider: AsyncProvider, workspace: Workspace
    ) -> None:
        result = await provider.run_in_workspace(workspace, "print(1)")
        assert result.workspace_id == workspace.id
        by_id = await provider.run_in_workspace(workspace.id, "print(2)")
        assert by_id.stdout == "2\n"
        assert by_id.workspace_id == workspace.id

    async def test_exec_runs_a_shell_command(
        self, provider: AsyncProvider, workspace: Workspace
    ) -> None:
        _require_language(provider, Language.SHELL)
        result = await provider.exec(workspace, "echo one; echo two >&2; exit 3")
        assert (result.stdout, result.stderr, result.exit_code) == ("one\n", "two\n", 3), show(
            result
        )


HEARTBEAT = code(
    """
    import subprocess, sys, time
    beat = '''
    import os, sys, time
    path = sys.argv[1]
    while True:
        with open(path + ".tmp", "w") as f:
            f.write(str(time.time_ns()))
        os.replace(path + ".tmp", path)
        time.sleep(0.05)
    '''
    subprocess.Popen([sys.executable, "-c", beat, "heartbeat-child"])
    subprocess.Popen(
        [sys.executable, "-c", beat, "heartbeat-daemon"],
        start_new_session=True,
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    print("started", flush=True)
    time.sleep(120)
    """
)

READ_BEATS = code(
    """
    import json, os
    def read(p):
        try:
            with open(p) as f:
                return f.read()
        except FileNotFoundError:
            return None
    print(json.dumps({p: read(p) for p in ("heartbeat-child", "heartbeat-daemon")}))
    """
)


class TimeoutContract(AsyncContract):
    """Timeouts raise a typed error with partial output, and really kill the process tree."""

    grace: float = 15.0
    """Seconds a provider may take beyond the timeout to kill the code and report."""
    timeouts: tuple[float, ...] = (1.5, 6.0)
    """Timeouts tried in turn while a run ends before the code could print anything.

    On an overloaded machine the code may not reach its first ``print`` within a short
    timeout; that run says nothing about partial output, so the next (longer) timeout is
    tried. A provider that loses partial output fails with every one of them.
    """

    async def test_timeout_raises_with_partial_output(self, provider: AsyncProvider) -> None:
        for timeout in self.timeouts:
            started = time.monotonic()
            with pytest.raises(ExecutionTimeout) as caught:
                await provider.run(
                    "import sys, time; print('before', flush=True); "
                    "print('err-before', file=sys.stderr, flush=True); time.sleep(60)",
                    timeout=timeout,
                )
            elapsed = time.monotonic() - started
            error = caught.value
            if error.stdout or error.stderr or timeout == self.timeouts[-1]:
                break  # the code printed (or this was the last chance): conclusive
        assert isinstance(error, TimeoutError)
        assert error.timeout == timeout
        assert "before" in error.stdout
        assert "err-before" in error.stderr
        assert timeout <= elapsed < timeout + self.grace, elapsed

    @pytest.mark.requires(Capability.PERSISTENCE)
    async def test_timeout_kills_the_process_tree(
        self, provider: AsyncProvider, new_workspace: WorkspaceFactory
    ) -> None:
        for timeout in self.timeouts:
            workspace = await new_workspace(persistent=True)
            with pytest.raises(ExecutionTimeout) as caught:
                await provider.run_in_workspace(workspace, HEARTBEAT, timeout=2 * timeout)
            first = await self._beats(provider, workspace)
            started = "started" in caught.value.stdout and None not in first.values()
            if started or timeout == self.timeouts[-1]:
                break  # the tree was up before the deadline (or this was the last chance)
        assert "started" in caught.value.stdout
        assert None not in first.values(), f"the heartbeat children never started: {first}"
        await anyio.sleep(1.0)
        second = await self._beats(provider, workspace)
        alive = [name for name in first if first[name] != second[name]]
        assert not alive, f"still running after the timeout: {alive}"

    @pytest.mark.requires(Capability.PERSISTENCE)
    async def test_workspace_usable_after_timeout(
        self, provider: AsyncProvider, new_workspace: WorkspaceFactory
    ) -> None:
        workspace = await new_workspace(persistent=True)
        with pytest.raises(ExecutionTimeout):
            await provider.run_in_workspace(workspace, "import time; time.sleep(60)", timeout=1)
        result = await provider.run_in_workspace(workspace, "print('alive')")
        assert result.stdout == "alive\n", show(result)

    @staticmethod
    async def _beats(provider: AsyncProvider, workspace: Workspace) -> dict[str, str | None]:
        import json

        result = await provider.run_in_workspace(workspace, READ_BEATS, timeout=30)
        assert result.exit_code == 0, show(result)
        beats: dict[str, str | None] = json.loads(result.stdout)
        return beats
