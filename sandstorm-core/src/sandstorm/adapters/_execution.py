"""One interpreter execution assembled from the pieces a backend streams."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .._interactive import Execution, ExecutionError, ExecutionResult

__all__ = ["ExecutionCollector"]


class ExecutionCollector:
    """Collects an execution's output, rich results and error as they arrive.

    Each piece goes to its callback (``on_stdout``, ``on_stderr``, ``on_result``) at once;
    :meth:`execution` then gives the :class:`~sandstorm.Execution`. Adapters translate
    their backend's frames into :meth:`output`, :meth:`result` and :meth:`fail` calls.
    """

    def __init__(
        self,
        on_stdout: Callable[[str], None] | None = None,
        on_stderr: Callable[[str], None] | None = None,
        on_result: Callable[[ExecutionResult], None] | None = None,
    ) -> None:
        self._callbacks = {"stdout": on_stdout, "stderr": on_stderr}
        self._on_result = on_result
        self._text: dict[str, list[str]] = {"stdout": [], "stderr": []}
        self.results: list[ExecutionResult] = []
        self.error: ExecutionError | None = None

    @property
    def stdout(self) -> str:
        """What the code printed to stdout so far."""
        return "".join(self._text["stdout"])

    @property
    def stderr(self) -> str:
        """What the code printed to stderr so far."""
        return "".join(self._text["stderr"])

    def output(self, stream: str, text: str) -> None:
        """A piece of ``stream`` (``"stdout"`` or ``"stderr"``) output."""
        self._text[stream].append(text)
        callback = self._callbacks[stream]
        if callback is not None:
            callback(text)

    def result(self, data: Any, *, main: bool) -> None:
        """A rich result (a mime bundle); ``main`` for the last expression's value."""
        result = ExecutionResult(data=data if isinstance(data, dict) else {}, is_main_result=main)
        self.results.append(result)
        if self._on_result is not None:
            self._on_result(result)

    def fail(self, name: object, value: object, traceback: object) -> None:
        """The code raised (``name``, ``value`` and ``traceback`` as the backend sent them)."""
        self.error = ExecutionError(name=str(name), value=str(value), traceback=str(traceback))

    def execution(self, *, execution_count: int | None, context_id: str | None) -> Execution:
        """The finished execution."""
        return Execution(
            stdout=self.stdout,
            stderr=self.stderr,
            results=self.results,
            error=self.error,
            execution_count=execution_count,
            context_id=context_id,
        )
