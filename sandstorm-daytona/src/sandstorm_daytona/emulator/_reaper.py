"""The emulator's lifecycle automation: due transitions, auto-stop/pause/archive/delete
and ttl, applied by a background task as the real service's scheduler does."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from ._errors import ApiError

if TYPE_CHECKING:
    from ._records import SandboxRecord
    from ._state import Emulator

__all__ = ["apply_rules", "reap_forever"]

log = logging.getLogger("sandstorm_daytona.emulator")


async def reap_forever(emulator: Emulator) -> None:
    """Apply the rules every ``reaper_interval`` seconds until cancelled."""
    while True:
        await asyncio.sleep(emulator.config.reaper_interval)
        try:
            await apply_rules(emulator)
        except Exception:  # the reaper must survive one bad sandbox
            log.exception("emulator lifecycle check failed")


async def apply_rules(emulator: Emulator) -> None:
    """Apply due transitions and the auto-stop/pause/archive/delete and ttl rules."""
    now = emulator.clock.now()
    emulator.settle_all(now)
    for record in list(emulator.sandboxes.values()):
        if record.transition_to is not None or record.id not in emulator.sandboxes:
            continue
        try:
            await _apply_to(emulator, record, now)
        except ApiError as exc:
            log.warning("lifecycle rule on %s failed: %s", record.id, exc.message)
        except Exception:  # one sandbox's failure never stops the others' rules
            log.exception("lifecycle rule on %s failed", record.id)
    emulator.settle_all(now)


async def _apply_to(emulator: Emulator, record: SandboxRecord, now: datetime) -> None:
    if record.auto_destroy_at is not None and now >= record.auto_destroy_at:
        await emulator.destroy_sandbox(record)
        return
    idle = now - (record.last_activity_at or record.created_at)
    if record.state == "started" and not emulator.sessions.busy(record.id):
        if record.auto_stop_interval > 0 and idle >= timedelta(minutes=record.auto_stop_interval):
            await emulator.stop_sandbox(record)
            return
        if record.auto_pause_interval > 0 and idle >= timedelta(minutes=record.auto_pause_interval):
            await emulator.pause_sandbox(record)
            return
    if record.state == "stopped":
        since = now - (record.stopped_at or record.updated_at or record.created_at)
        if record.auto_delete_interval >= 0 and since >= timedelta(
            minutes=record.auto_delete_interval
        ):
            await emulator.destroy_sandbox(record)
            return
        if record.auto_archive_interval > 0 and since >= timedelta(
            minutes=record.auto_archive_interval
        ):
            await emulator.archive_sandbox(record)
