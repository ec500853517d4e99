"""Hook specifications: what a Sandstorm plugin may implement.

Plugins are modules or objects with functions marked ``@sandstorm.hookimpl``, loaded from
the ``sandstorm`` entry-point group. Hooks are synchronous and are called from async
code: keep them cheap and never block.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from ._audit import AuditEvent
    from ._models import RunResult, Workspace
    from ._provider import AsyncProvider, ExecRequest
    from .router import RoutingDecision

PROJECT = "sandstorm"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def sandstorm_before_run(
    provider: AsyncProvider, workspace: Workspace, request: ExecRequest
) -> None:
    """Called before code runs in ``workspace``. Raise to veto the run."""


@hookspec
def sandstorm_after_run(
    provider: AsyncProvider,
    workspace: Workspace,
    request: ExecRequest,
    result: RunResult | None,
    error: BaseException | None,
) -> None:
    """Called after a run with its result, or the error it raised."""


@hookspec
def sandstorm_workspace_created(provider: AsyncProvider, workspace: Workspace) -> None:
    """Called after a workspace was created."""


@hookspec
def sandstorm_workspace_deleted(provider: AsyncProvider, workspace_id: str) -> None:
    """Called after a workspace was deleted."""


@hookspec
def sandstorm_audit(event: AuditEvent) -> None:
    """Called for every auditable action. ``event`` never holds a secret."""


@hookspec
def sandstorm_routed(provider: AsyncProvider, decision: RoutingDecision) -> None:
    """Called when the ``router`` provider routed a call: ``decision`` names the member
    chosen (``None`` when none could take it), why, and the members skipped or failed."""
