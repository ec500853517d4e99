"""Interpreter contexts on ``local``: one persistent driver process per context.

Each context is a background process (``_processes.py``) running ``_driver.py`` in the
workspace's sandbox; the host sends one request per line and reads JSON frames back.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from .._errors import ExecutionTimeout, InvalidArgument
from .._interactive import CodeContext, Execution, ExecutionResult
from .._models import Language, Workspace
from .._provider import ExecRequest
from ..adapters import ExecutionCollector
from ._processes import LONG_LIVED, LocalProcess, launch

if TYPE_CHECKING:
    from ._provider import LocalProvider

__all__ = ["DRIVER", "LocalContext"]

DRIVER = (Path(__file__).parent / "_driver.py").read_text()
"""The source the sandbox runs for every context."""

GRACE = 10.0
"""Seconds past the timeout before the host gives up on the in-sandbox interrupt."""


class LocalContext:
    """A context's driver process and its request/frame exchange."""

    def __init__(self, workspace_id: str, language: str, cwd: str | None, env: dict[str, str]):
        self.id = "ctx-" + uuid.uuid4().hex[:12]
        self.workspace_id = workspace_id
        self.language = language
        self.cwd = cwd
        self.env = env
        self.process: LocalProcess | None = None
        self.lock = asyncio.Lock()
        self._frames: asyncio.Queue[dict[str, object] | None] = asyncio.Queue()
        self._partial = ""

    def model(self) -> CodeContext:
        """The public view."""
        return CodeContext(
            id=self.id, workspace_id=self.workspace_id, language=self.language, cwd=self.cwd
        )

    async def start(self, provider: LocalProvider, workspace: Workspace) -> None:
        """Start (or restart) the driver process."""
        self.stop()
        self._frames = asyncio.Queue()
        self._partial = ""
        env = dict(self.env)
        if self.cwd is not None:
            env["SANDSTORM_CONTEXT_CWD"] = self.cwd
        request = ExecRequest(code=DRIVER, language=Language.PYTHON, timeout=LONG_LIVED, env=env)
        process = await launch(
            provider, workspace, request, command="<interpreter>", stdin=True, keep=False
        )
        frames = self._frames
        process.listeners.append(self._on_chunk)
        process.done.add_done_callback(lambda _: frames.put_nowait(None))
        self.process = process

    def stop(self, *, background: bool = True) -> None:
        """Kill the driver process."""
        if self.process is not None:
            self.process.listeners.clear()
            self.process.close(background=background)
            self.process = None

    def _on_chunk(self, stream: str, text: str) -> None:
        if stream != "stdout":
            self._frames.put_nowait({"type": "stderr", "text": text})
            return
        self._partial += text
        *lines, self._partial = self._partial.split("\n")
        for line in lines:
            if line:
                with contextlib.suppress(ValueError):
                    self._frames.put_nowait(json.loads(line))

    async def execute(
        self,
        provider: LocalProvider,
        workspace: Workspace,
        code: str,
        timeout: float,
        on_stdout: Callable[[str], None] | None,
        on_stderr: Callable[[str], None] | None,
        on_result: Callable[[ExecutionResult], None] | None,
    ) -> Execution:
        """Run ``code`` in this context and collect what it produced."""
        async with self.lock:
            if self.process is None or self.process.done.done():
                await self.start(provider, workspace)
            assert self.process is not None
            line = json.dumps({"code": code, "timeout": timeout}) + "\n"
            await self.process.send(line.encode())
            collected = ExecutionCollector(on_stdout, on_stderr, on_result)
            count: int | None = None
            timed_out = False
            loop = asyncio.get_running_loop()
            deadline = loop.time() + timeout + GRACE
            while True:
                try:
                    frame = await asyncio.wait_for(self._frames.get(), deadline - loop.time())
                except TimeoutError:
                    self.stop()  # the interrupt did not work: the state is lost
                    raise ExecutionTimeout(
                        timeout, collected.stdout, collected.stderr, workspace_id=workspace.id
                    ) from None
                if frame is None:
                    collected.fail(
                        "ContextExited",
                        "the interpreter ended (killed, or out of memory); "
                        "the next run starts a fresh one",
                        "",
                    )
                    self.process = None
                    break
                kind = frame.get("type")
                if kind in {"stdout", "stderr"}:
                    collected.output(kind, str(frame.get("text", "")))
                elif kind == "result":
                    collected.result(frame.get("data"), main=bool(frame.get("main")))
                elif kind == "error":
                    timed_out = bool(frame.get("timeout"))
                    collected.fail(frame.get("name"), frame.get("value"), frame.get("traceback"))
                elif kind == "done":
                    value = frame.get("count")
                    count = value if isinstance(value, int) else None
                    break
            if timed_out:
                raise ExecutionTimeout(
                    timeout, collected.stdout, collected.stderr, workspace_id=workspace.id
                )
            return collected.execution(execution_count=count, context_id=self.id)


def check_language(language: str) -> None:
    """Only Python contexts on ``local``."""
    if language != Language.PYTHON:
        raise InvalidArgument(f"local interpreter contexts run python, not {language!r}")
