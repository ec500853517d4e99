"""Building blocks for provider adapters: what every adapter would otherwise write again.

A process runner (:func:`run_process`: caps, clean decoding, timeout with a tree kill,
stdin, a clean environment), a workspace/snapshot directory store (:class:`DirectoryStore`),
an interpreter execution assembled from streamed pieces (:class:`ExecutionCollector`),
credential helpers for URLs, readers of cgroup accounting files, and cleanup a cancelled
caller cannot interrupt (:func:`shielded`).

>>> from sandstorm.adapters import split_credentials
>>> split_credentials("https://bot:t%40ken@[::1]:8080/repo.git")
('https://[::1]:8080/repo.git', 'bot', 't@ken')
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_attributes
from ._credentials import redact_credentials, scrub_credentials, split_credentials

if TYPE_CHECKING:
    from ._aio import shielded
    from ._cgroup import blkio_bytes, cgroup_counters, io_bytes
    from ._execution import ExecutionCollector
    from ._process import (
        BASE_ENV,
        ProcessResult,
        clean_env,
        decode_prefix,
        kill_process_tree,
        run_process,
    )
    from ._store import DirectoryStore

_LAZY: dict[str, str] = {
    "BASE_ENV": "_process",
    "blkio_bytes": "_cgroup",
    "cgroup_counters": "_cgroup",
    "io_bytes": "_cgroup",
    "DirectoryStore": "_store",
    "ExecutionCollector": "_execution",
    "ProcessResult": "_process",
    "clean_env": "_process",
    "decode_prefix": "_process",
    "kill_process_tree": "_process",
    "run_process": "_process",
    "shielded": "_aio",
}
"""Names imported on first use (the core imports this package for its credential helpers)."""

__all__ = [
    "BASE_ENV",
    "DirectoryStore",
    "ExecutionCollector",
    "ProcessResult",
    "blkio_bytes",
    "cgroup_counters",
    "clean_env",
    "decode_prefix",
    "io_bytes",
    "kill_process_tree",
    "redact_credentials",
    "run_process",
    "scrub_credentials",
    "shielded",
    "split_credentials",
]

__getattr__, __dir__ = lazy_attributes(__name__, _LAZY, globals())
