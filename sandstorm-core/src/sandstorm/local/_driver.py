"""The interpreter that runs inside the sandbox for one code context (its source is sent).

Protocol: one JSON request per line on stdin (``{"code": ..., "timeout": ...}``); JSON
frames, one per line, on the original stdout: ``stdout``/``stderr`` text, ``result``
mime bundles, ``error``, then ``done``. The code's own fd 1 is pointed at fd 2, so
output written around Python (subprocesses) lands in the process's stderr, never in
the frames. A timeout is an alarm inside the sandbox that interrupts the code with
``KeyboardInterrupt``; the context and its state stay.

This module is not imported by the host: ``DRIVER`` is its source.
"""

from __future__ import annotations

import ast
import base64
import builtins
import io
import json
import linecache
import os
import signal
import sys
import traceback
from typing import Any

_proto: Any = None
CWD_VARIABLE = "SANDSTORM_CONTEXT_CWD"
"""Where the context starts (set by the host, removed before any code runs)."""

_REPRS = (
    ("text/html", "_repr_html_"),
    ("text/markdown", "_repr_markdown_"),
    ("image/svg+xml", "_repr_svg_"),
    ("image/png", "_repr_png_"),
    ("image/jpeg", "_repr_jpeg_"),
    ("application/json", "_repr_json_"),
    ("text/latex", "_repr_latex_"),
)


def _send(frame: dict[str, Any]) -> None:
    _proto.write(json.dumps(frame, default=repr) + "\n")


class _Out(io.TextIOBase):
    def __init__(self, name: str) -> None:
        self.stream = name

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        if text:
            _send({"type": self.stream, "text": text})
        return len(text)

    def isatty(self) -> bool:
        return False


def _figure_png(obj: object) -> str | None:
    figure_type = getattr(sys.modules.get("matplotlib.figure"), "Figure", None)
    if figure_type is None or not isinstance(obj, figure_type):
        return None
    buffer = io.BytesIO()
    obj.savefig(buffer, format="png")
    return base64.b64encode(buffer.getvalue()).decode()


def _bundle(obj: object) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for mime, name in _REPRS:
        method = getattr(obj, name, None)
        if not callable(method) or isinstance(obj, type):
            continue
        try:
            value = method()
        except Exception:
            continue
        if isinstance(value, tuple):
            value = value[0]
        if value is None:
            continue
        if isinstance(value, bytes):
            value = base64.b64encode(value).decode()
        data[mime] = value
    png = _figure_png(obj)
    if png is not None:
        data["image/png"] = png
    data["text/plain"] = repr(obj)
    return data


def display(*objects: object, **_: object) -> None:
    """Show ``objects`` as rich results of the current execution."""
    for obj in objects:
        _send({"type": "result", "data": _bundle(obj), "main": False})


def _open_figures() -> None:
    pyplot = sys.modules.get("matplotlib.pyplot")
    if pyplot is None:
        return
    for number in pyplot.get_fignums():
        figure = pyplot.figure(number)
        _send({"type": "result", "data": _bundle(figure), "main": False})
    pyplot.close("all")


def _alarm(signum: int, frame: object) -> None:
    raise KeyboardInterrupt("timeout")


def _error(exc: BaseException) -> dict[str, Any]:
    tb = exc.__traceback__
    while tb is not None and not tb.tb_frame.f_code.co_filename.startswith("<cell"):
        tb = tb.tb_next
    text = "".join(traceback.format_exception(type(exc), exc, tb))
    return {"type": "error", "name": type(exc).__name__, "value": str(exc), "traceback": text}


def _serve() -> None:
    global _proto
    _proto = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8")
    os.dup2(2, 1)
    requests = sys.stdin.buffer
    sys.stdin = io.StringIO()
    sys.stdout = _Out("stdout")
    sys.stderr = _Out("stderr")
    os.environ.setdefault("MPLBACKEND", "Agg")
    cwd = os.environ.pop(CWD_VARIABLE, None)
    if cwd:
        os.chdir(cwd)
    namespace: dict[str, Any] = {"__name__": "__main__", "__builtins__": builtins}
    namespace["display"] = display
    signal.signal(signal.SIGALRM, _alarm)
    count = 0
    while True:
        line = requests.readline()
        if not line:
            return
        request = json.loads(line)
        count += 1
        name = f"<cell-{count}>"
        code = request["code"]
        linecache.cache[name] = (len(code), None, code.splitlines(True), name)
        try:
            try:
                tree = ast.parse(code, name, "exec")
                last = None
                if tree.body and isinstance(tree.body[-1], ast.Expr):
                    last = ast.Expression(tree.body.pop().value)
                signal.setitimer(signal.ITIMER_REAL, float(request["timeout"]))
                try:
                    exec(compile(tree, name, "exec"), namespace)
                    value = None
                    if last is not None:
                        value = eval(compile(last, name, "eval"), namespace)
                finally:
                    signal.setitimer(signal.ITIMER_REAL, 0)
                _open_figures()
                if value is not None:
                    namespace["_"] = value
                    _send({"type": "result", "data": _bundle(value), "main": True})
            except KeyboardInterrupt as exc:
                frame = _error(exc)
                frame["timeout"] = str(exc) == "timeout"
                _send(frame)
            except BaseException as exc:
                _send(_error(exc))
        except KeyboardInterrupt:
            pass  # the alarm fired on the way out: the code had finished
        _send({"type": "done", "count": count})


if __name__ == "__main__":
    _serve()
