"""Demultiplex the log stream: 3 x \\x01 switches to stdout, 3 x \\x02 to stderr."""

from __future__ import annotations

import base64
import binascii
import codecs
from collections.abc import Callable

__all__ = ["STDERR_MARK", "STDOUT_MARK", "Demux", "TextSink", "Unframe"]

STDOUT_MARK = b"\x01\x01\x01"
STDERR_MARK = b"\x02\x02\x02"

TextSink = Callable[[str, str], None]
"""Receives ``(stream, text)`` with ``stream`` in ``{"stdout", "stderr"}``."""


class Demux:
    """Split a marker-multiplexed byte stream into stdout and stderr text.

    Markers may be cut across frames; bytes are held back until they cannot be the
    start of a marker. Bytes before the first marker are dropped (as the SDK does).
    UTF-8 is decoded incrementally per stream, so a character cut across frames is kept.
    """

    def __init__(self, sink: TextSink) -> None:
        self._sink = sink
        self._pending = b""
        self._stream: str | None = None
        self._decoders = {
            name: codecs.getincrementaldecoder("utf-8")(errors="replace")
            for name in ("stdout", "stderr")
        }

    def feed(self, data: bytes) -> None:
        """Take the next frame's bytes."""
        buf = self._pending + data
        out = bytearray()
        i = 0
        while i < len(buf):
            byte = buf[i]
            if byte in (1, 2):
                mark = STDOUT_MARK if byte == 1 else STDERR_MARK
                head = buf[i : i + 3]
                if head == mark:
                    self._emit(bytes(out))
                    out.clear()
                    self._stream = "stdout" if byte == 1 else "stderr"
                    i += 3
                    continue
                if mark.startswith(head):  # a marker may continue in the next frame
                    break
            out.append(byte)
            i += 1
        self._emit(bytes(out))
        self._pending = buf[i:]

    def close(self) -> None:
        """Flush what is held back at the end of the stream."""
        if self._pending:
            pending, self._pending = self._pending, b""
            self._emit(pending)
        for name, decoder in self._decoders.items():
            tail = decoder.decode(b"", final=True)
            if tail:
                self._sink(name, tail)

    def _emit(self, data: bytes) -> None:
        if not data or self._stream is None:
            return
        text = self._decoders[self._stream].decode(data)
        if text:
            self._sink(self._stream, text)


class Unframe:
    """Decode one stream of the run wrapper's framed output back to the code's text.

    The wrapper (``_command.py``) writes the code's output as lines ``@@<base64>``, one
    per chunk read, so the daemon's line relabelling cannot change it; this turns them
    back into the exact bytes, decoded as UTF-8 (``errors="replace"``, incrementally, so
    a character cut across chunks is kept). Any other line (a shell's own complaint
    before the framers started) is passed through as it came.
    """

    def __init__(self, frame: str) -> None:
        self._frame = frame
        self._line = ""
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.consumed = 0
        """Characters of raw (framed) text fed so far."""
        self.text = ""
        """All decoded text so far."""

    def feed(self, raw: str) -> str:
        """Take more raw text; return the newly decoded text."""
        self.consumed += len(raw)
        lines = (self._line + raw).split("\n")
        self._line = lines.pop()
        out = "".join(self._decode(line + "\n") for line in lines)
        self.text += out
        return out

    def close(self) -> str:
        """Flush an unterminated last line and the decoder; return the new text."""
        line, self._line = self._line, ""
        out = (self._decode(line) if line else "") + self._decoder.decode(b"", final=True)
        self.text += out
        return out

    def _decode(self, line: str) -> str:
        if line.startswith(self._frame):
            try:
                return self._decoder.decode(base64.b64decode(line[len(self._frame) :].strip()))
            except (binascii.Error, ValueError):
                pass
        return line
