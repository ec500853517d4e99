"""Demultiplex the log stream: 3 x \\x01 switches to stdout, 3 x \\x02 to stderr."""

from __future__ import annotations

import codecs
from collections.abc import Callable

__all__ = ["STDERR_MARK", "STDOUT_MARK", "Demux", "TextSink"]

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
