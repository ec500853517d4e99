"""Toolbox info endpoints: work dir, home dir, version, system metrics, ports."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

import sandstorm

from ._daemon import (
    emulator_of,
)
from ._errors import DaemonError, iso
from ._records import SandboxRecord
from ._workspace_shell import probe_dirs

__all__ = ["home_dir", "port_in_use", "ports", "system_metrics", "version", "work_dir"]


async def work_dir(request: Request, record: SandboxRecord) -> Response:
    """``GET /work-dir``."""
    work, _ = await probe_dirs(emulator_of(request), record)
    return JSONResponse({"dir": work})


async def home_dir(request: Request, record: SandboxRecord) -> Response:
    """``GET /user-home-dir``."""
    _, home = await probe_dirs(emulator_of(request), record)
    return JSONResponse({"dir": home})


async def version(request: Request, record: SandboxRecord) -> Response:
    """``GET /version``."""
    from .. import emulator as package

    return JSONResponse({"version": package.DAEMON_VERSION})


async def system_metrics(request: Request, record: SandboxRecord) -> Response:
    """``GET /system/metrics``: a fresh reading from the engine's accounting.

    404 with ``EmulatorConfig.system_metrics`` off, as daemons older than the endpoint do.
    """
    emulator = emulator_of(request)
    if not emulator.config.system_metrics:
        raise DaemonError(404, "404 page not found", "NOT_FOUND")
    try:
        sample = await emulator.sample(record)
    except sandstorm.CapabilityNotSupported as exc:
        raise DaemonError(501, str(exc), "NOT_IMPLEMENTED") from None
    return JSONResponse(
        {
            "cpuCount": sample.cpu_count,
            "cpuUsedPct": sample.cpu_used_pct,
            "memTotal": sample.mem_total,
            "memUsed": sample.mem_used,
            "diskTotal": sample.disk_total,
            "diskUsed": sample.disk_used,
            "diskFree": max(0, sample.disk_total - sample.disk_used),
            "timestamp": iso(sample.at),
            "timestampUnix": int(sample.at.timestamp()),
        }
    )


async def ports(request: Request, record: SandboxRecord) -> Response:
    """``GET /port``: the engine isolates networking, so no ports are exposed."""
    return JSONResponse({"ports": []})


async def port_in_use(request: Request, record: SandboxRecord) -> Response:
    """``GET /port/{port}/in-use``."""
    return JSONResponse({"isInUse": False})
