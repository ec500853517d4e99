"""Did a check leave a workspace behind? Told apart from other processes' workspaces.

Other processes may use the same account or state root at the same time (parallel CI
jobs, ``pytest-xdist`` workers, another kit session, the application itself), so a
plain "listed before / listed after" diff would blame their new workspaces on the
provider under test. :class:`LeakWatch` blames every workspace that appeared during the
check unless the kit can *prove* it is someone else's:

- it was created through the core (the ``sandstorm_workspace_created`` hook fired in this
  process during the check): ours, whatever its labels say;
- otherwise, the core's owner label (``host/pid/start`` of the creating process, which
  every workspace created through :class:`sandstorm.AsyncProvider` carries) names another
  process, or the kit's own label or name prefix names another kit session: someone
  else's, ignored.

A workspace with neither proof counts as a leak, so an adapter that makes a workspace
behind the core's back (no hook, no owner label, or this process as owner) is still caught.
A client that is not Sandstorm and creates workspaces on the same account during a check
cannot be told apart: run such clients elsewhere (see docs/conformance.md).
"""

from __future__ import annotations

import threading

from sandstorm import AsyncProvider, Workspace, hookimpl, plugin_manager
from sandstorm._exits import current_owner
from sandstorm._provider import LABEL_PROCESS

from ._base import LABEL

__all__ = ["LeakWatch"]


class _Ledger:
    """Every workspace id the core reports created in this process, in order."""

    def __init__(self) -> None:
        self.created: list[str] = []
        self._lock = threading.Lock()

    @hookimpl
    def sandstorm_workspace_created(self, provider: AsyncProvider, workspace: Workspace) -> None:
        with self._lock:
            self.created.append(workspace.id)

    def mark(self) -> int:
        """Register with the (current) plugin manager; the position of the next event."""
        manager = plugin_manager()
        with self._lock:
            if not manager.is_registered(self):
                manager.register(self, name=f"sandstorm-testkit-ledger-{id(manager)}")
            return len(self.created)

    def since(self, mark: int) -> set[str]:
        with self._lock:
            return set(self.created[mark:])


_LEDGER = _Ledger()


class LeakWatch:
    """Workspaces listed before a check; :meth:`leaked` names those it left behind."""

    def __init__(self, provider: AsyncProvider, run_id: str, before: set[str], mark: int) -> None:
        self.provider = provider
        self.run_id = run_id
        self.before = before
        self._mark = mark

    @classmethod
    async def start(cls, provider: AsyncProvider, run_id: str) -> LeakWatch:
        """Watch from now on (``run_id``: this kit session's, see ``sandstorm_run_id``)."""
        mark = _LEDGER.mark()
        before = {ws.id for ws in await provider.list_workspaces()}
        return cls(provider, run_id, before, mark)

    async def leaked(self) -> list[str]:
        """Workspaces listed now that were not before and are not provably someone else's."""
        created = _LEDGER.since(self._mark)
        listed = {ws.id for ws in await self.provider.list_workspaces()}
        suspects = listed - self.before
        unexplained = suspects - created
        if unexplained:
            # the labels list_workspaces() hides: the adapter's own listing has them
            raw: dict[str, Workspace] = {ws.id: ws for ws in await self.provider._list_workspaces()}
            foreign = {i for i in unexplained if i in raw and self._foreign(raw[i])}
            suspects -= foreign
        return sorted(suspects)

    def _foreign(self, workspace: Workspace) -> bool:
        owner = workspace.labels.get(LABEL_PROCESS)
        if owner:
            return owner != current_owner()
        session = workspace.labels.get(LABEL)
        if session:
            return session != self.run_id
        name = workspace.name or ""  # restored workspaces have the kit's names, not labels
        return name.startswith("sstk-") and not name.startswith(f"sstk-{self.run_id}-")
