"""Same call, same answer: the semantics every provider shares behind the one API.

Workspace names are unique and find their workspace; ``get_or_create_workspace`` is
idempotent; ``list_workspaces(labels=...)`` filters; a workspace's labels are exactly the
caller's (providers' own labels stay hidden); python output streams as it is printed,
flushed or not, and what C code prints comes out as ``python -u`` prints it; a file the
code leaves open keeps what it wrote, and only that; a run is over when it returns (what
its process held is released); a process the code forks ends on its own; ``stream`` is on
workspace handles, and the blocking ``stream`` gives the result
after its chunks.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest

import sandstorm
from sandstorm import AsyncProvider, Capability, ProviderUnavailable, WorkspaceExists

from ._base import LABEL, AsyncContract, SyncContract, WorkspaceFactory
from ._helpers import show
from ._leaks import LeakWatch

__all__ = ["SemanticsContract", "SyncSemanticsContract"]


class SemanticsContract(AsyncContract):
    """Names, labels and streaming mean the same on every provider."""

    async def test_names_are_unique_and_find_their_workspace(
        self, provider: AsyncProvider, new_workspace: WorkspaceFactory
    ) -> None:
        name = new_workspace.name()
        workspace = await new_workspace(name=name)
        with pytest.raises(WorkspaceExists):
            await new_workspace(name=name)
        found = await provider.get_workspace(name)
        assert (found.id, found.name) == (workspace.id, name)
        result = await provider.run_in_workspace(name, "print('by name')")
        assert result.stdout == "by name\n", show(result)

    async def test_get_or_create_is_idempotent(
        self, provider: AsyncProvider, new_workspace: WorkspaceFactory
    ) -> None:
        name = new_workspace.name()
        labels = {**new_workspace.labels, "purpose": "get-or-create"}
        persistent = provider.supports(Capability.PERSISTENCE)
        first = await provider.get_or_create_workspace(
            name=name, labels=labels, persistent=persistent
        )
        new_workspace.track(first)
        again = await provider.get_or_create_workspace(
            name=name, labels=labels, persistent=persistent
        )
        assert again.id == first.id
        assert first.labels == labels

    async def test_labels_filter_and_only_the_callers_labels_show(
        self, provider: AsyncProvider, new_workspace: WorkspaceFactory
    ) -> None:
        red = await new_workspace(labels={"colour": "red"})
        blue = await new_workspace(labels={"colour": "blue"})
        expected = {**new_workspace.labels, "colour": "red"}
        assert red.labels == expected, "a provider's own labels must not show"
        assert (await provider.get_workspace(red.id)).labels == expected
        listed = await provider.list_workspaces(
            labels={"colour": "red", LABEL: new_workspace.run_id}
        )
        assert [ws.id for ws in listed] == [red.id]
        assert listed[0].labels == expected
        assert blue.id not in {ws.id for ws in listed}

    async def test_a_closed_provider_is_unavailable(
        self, provider_factory: Callable[[], AsyncProvider]
    ) -> None:
        closed = provider_factory()
        await closed.aclose()
        await closed.aclose()  # idempotent
        with pytest.raises(ProviderUnavailable):
            await closed.run("print(1)")
        with pytest.raises(ProviderUnavailable):
            await closed.list_workspaces()
        with pytest.raises(ProviderUnavailable):
            await closed.create_workspace(persistent=False)

    async def test_aclose_stops_calls_in_flight_and_cleans_up(
        self,
        provider: AsyncProvider,
        provider_factory: Callable[[], AsyncProvider],
        sandstorm_run_id: str,
    ) -> None:
        closing = provider_factory()
        watch = await LeakWatch.start(provider, sandstorm_run_id)
        running = asyncio.ensure_future(closing.run("import time\ntime.sleep(60)", timeout=120))
        await asyncio.sleep(2)
        started = time.monotonic()
        await closing.aclose()
        with pytest.raises(ProviderUnavailable):
            await running
        assert time.monotonic() - started < 30, "aclose() waited for the run to end"
        leaked = await watch.leaked()
        assert not leaked, f"aclose() left the run's workspace: {leaked}"

    async def test_python_output_of_c_code_is_kept(self, provider: AsyncProvider) -> None:
        """What C code prints (an extension's ``printf``) is never lost at exit; where
        output streams (python output unbuffered, as ``python -u``), C's is unbuffered
        too: it comes before the Python line printed after it."""
        result = await provider.run(
            "try:\n"
            "    import ctypes\n"
            "    libc = ctypes.CDLL(None)\n"
            "except Exception:\n"
            "    print('no ctypes here')\n"
            "    raise SystemExit\n"
            "libc.printf(b'from C\\n')\n"
            "print('from Python')\n",
            timeout=60,
        )
        if result.stdout == "no ctypes here\n":
            pytest.skip("the sandbox's Python cannot load the C library (ctypes)")
        assert sorted(result.stdout.splitlines()) == ["from C", "from Python"], show(result)
        if provider.supports(Capability.STREAMING):
            assert result.stdout == "from C\nfrom Python\n", show(result)

    async def test_a_file_left_open_keeps_what_was_written(
        self, provider: AsyncProvider, new_workspace: WorkspaceFactory
    ) -> None:
        """As at a real interpreter exit, what the code's globals hold is finalized: a
        file written and never closed keeps its data for the next run."""
        workspace = await new_workspace()
        await provider.run_in_workspace(
            workspace, "log = open('left-open.txt', 'w')\nlog.write('kept')\n", timeout=60
        )
        result = await provider.run_in_workspace(
            workspace, "print(open('left-open.txt').read())", timeout=60
        )
        assert result.stdout == "kept\n", show(result)

    async def test_files_the_code_leaves_open_hold_only_what_it_wrote(
        self, provider: AsyncProvider, new_workspace: WorkspaceFactory
    ) -> None:
        """Code that closes every descriptor it did not open and opens its own under
        those numbers owns them: nothing the provider does at exit writes into them."""
        workspace = await new_workspace()
        await provider.run_in_workspace(
            workspace,
            "import os\n"
            "os.closerange(3, 4096)\n"
            "for i in range(40):\n"
            "    fd = os.open('open-%d.txt' % i, os.O_WRONLY | os.O_CREAT, 0o644)\n"
            "    os.write(fd, b'file %d' % i)\n",
            timeout=60,
        )
        result = await provider.run_in_workspace(
            workspace,
            "print(all(open('open-%d.txt' % i).read() == 'file %d' % i for i in range(40)))",
            timeout=60,
        )
        assert result.stdout == "True\n", show(result)

    async def test_a_run_is_over_when_it_returns(
        self, provider: AsyncProvider, new_workspace: WorkspaceFactory
    ) -> None:
        """What the code's process held until it ended (here a lock on a descriptor it
        never closed) is released by the time ``run`` returns: the next run finds it free.
        (The process also holds 256 MiB in small pages to the end, which take the kernel a
        while to give back: a provider must not answer before its process is done.)"""
        workspace = await new_workspace()
        first = await provider.run_in_workspace(
            workspace,
            "import fcntl, mmap, os, sys\n"
            "held = mmap.mmap(-1, 256 << 20)\n"
            "if hasattr(mmap, 'MADV_NOHUGEPAGE'):\n"
            "    held.madvise(mmap.MADV_NOHUGEPAGE)\n"
            "held.write(b'x' * (256 << 20))\n"
            "sys.held_to_the_end = held\n"
            "fd = os.open('lock', os.O_RDWR | os.O_CREAT, 0o600)\n"
            "fcntl.flock(fd, fcntl.LOCK_EX)\n"
            "print('locked')\n",
            timeout=60,
        )
        assert first.stdout == "locked\n", show(first)
        second = await provider.run_in_workspace(
            workspace,
            "import fcntl, os\n"
            "fd = os.open('lock', os.O_RDWR)\n"
            "try:\n"
            "    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)\n"
            "    print('free')\n"
            "except OSError as exc:\n"
            "    print('still held', exc.errno)\n",
            timeout=60,
        )
        assert second.stdout == "free\n", show(second)

    async def test_a_process_the_code_forks_ends_on_its_own(self, provider: AsyncProvider) -> None:
        """A child the code forks that runs to the end of the code exits with its own
        status; the run goes on until the code's first process ends."""
        result = await provider.run(
            "import os, sys\n"
            "pid = os.fork()\n"
            "if pid == 0:\n"
            "    print('child', flush=True)\n"
            "    sys.exit(5)\n"
            "_, status = os.waitpid(pid, 0)\n"
            "print('parent', status >> 8)\n",
            timeout=60,
        )
        assert (result.stdout, result.exit_code) == ("child\nparent 5\n", 0), show(result)

    @pytest.mark.requires(Capability.STREAMING)
    async def test_python_output_streams_unflushed(self, provider: AsyncProvider) -> None:
        started = time.monotonic()
        arrivals: list[tuple[float, str]] = []
        result = await provider.run(
            "import time\nprint('first')\ntime.sleep(3)\nprint('second')",
            on_stdout=lambda text: arrivals.append((time.monotonic() - started, text)),
            timeout=60,
        )
        ended = time.monotonic() - started
        assert result.stdout == "first\nsecond\n", show(result)
        early = [at for at, text in arrivals if "first" in text]
        assert early, arrivals
        assert early[0] < ended - 2, f"unflushed output arrived only at the end: {arrivals}"

    @pytest.mark.requires(Capability.STREAMING)
    async def test_handle_streams_and_keeps_the_result(
        self, provider: AsyncProvider, sandstorm_run_id: str
    ) -> None:
        async with provider.sandbox(labels={LABEL: sandstorm_run_id}) as box:
            stream = box.stream("print('a'); print('b'); raise SystemExit(3)")
            text = "".join([chunk.text async for chunk in stream if chunk.stream == "stdout"])
            assert text == "a\nb\n"
            assert stream.result is not None
            assert (stream.result.exit_code, stream.result.workspace_id) == (3, box.id)


class SyncSemanticsContract(SyncContract):
    """The blocking API gives the same answers."""

    @pytest.mark.requires(Capability.STREAMING)
    def test_sync_stream_yields_then_holds_the_result(
        self, sync_provider: sandstorm.SyncProvider
    ) -> None:
        stream = sync_provider.stream("print('one'); print('two'); raise SystemExit(4)")
        text = "".join(chunk.text for chunk in stream if chunk.stream == "stdout")
        assert text == "one\ntwo\n"
        assert stream.result is not None
        assert stream.result.exit_code == 4

    def test_sync_list_workspaces_by_labels(
        self, sync_provider: sandstorm.SyncProvider, sandstorm_run_id: str
    ) -> None:
        persistent = Capability.PERSISTENCE in sync_provider.capabilities
        labels = {LABEL: sandstorm_run_id, "purpose": "sync-labels"}
        workspace = sync_provider.create_workspace(labels=labels, persistent=persistent)
        try:
            listed = sync_provider.list_workspaces(labels=labels)
            assert [ws.id for ws in listed] == [workspace.id]
        finally:
            sync_provider.delete_workspace(workspace)
