"""Small helpers shared by the contract classes."""

from __future__ import annotations

import hashlib
import json
import textwrap
from typing import Any

from sandstorm import AsyncProvider, RunResult, Workspace

__all__ = ["code", "deterministic_bytes", "run_json", "sha256", "show"]

MIB = 1 << 20


def code(source: str) -> str:
    """Dedent a Python snippet written inline in a test."""
    return textwrap.dedent(source).strip() + "\n"


def sha256(data: bytes) -> str:
    """Hex SHA-256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def deterministic_bytes(size: int, seed: str) -> bytes:
    """``size`` pseudo-random bytes from ``seed``; the same recipe runs inside the sandbox."""
    out = bytearray()
    counter = 0
    while len(out) < size:
        out += hashlib.sha512(f"{seed}:{counter}".encode()).digest()
        counter += 1
    return bytes(out[:size])


DETERMINISTIC_BYTES_SOURCE = code(
    """
    import hashlib
    def deterministic_bytes(size, seed):
        out = bytearray()
        counter = 0
        while len(out) < size:
            out += hashlib.sha512(f"{seed}:{counter}".encode()).digest()
            counter += 1
        return bytes(out[:size])
    """
)


def show(result: RunResult) -> str:
    """A compact description of a result for assertion messages."""
    return (
        f"exit_code={result.exit_code} reason={result.reason} signal={result.signal}\n"
        f"stdout={result.stdout[:2000]!r}\nstderr={result.stderr[:2000]!r}"
    )


async def run_json(provider: AsyncProvider, workspace: Workspace | None, source: str) -> Any:
    """Run Python that prints one JSON document last; return it (asserting exit 0)."""
    if workspace is None:
        result = await provider.run(source, timeout=60)
    else:
        result = await provider.run_in_workspace(workspace, source, timeout=60)
    assert result.exit_code == 0, show(result)
    lines = result.stdout.strip().splitlines()
    assert lines, show(result)
    return json.loads(lines[-1])
