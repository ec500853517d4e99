"""Hypothesis property tests and a stateful filesystem machine.

Hypothesis drives each test in a worker thread; every call to the provider is sent back
to the test's event loop (:func:`sandstorm_testkit._hypothesis.call`), so the provider
never changes event loop and hypothesis never sees a function-scoped fixture. The
settings come from the ``sandstorm-offline`` profile (``sandstorm-live`` with
``--sandstorm-live``, or any profile named with ``--hypothesis-profile``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import posixpath
import shlex
import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from sandstorm import AsyncProvider, Capability, Language, Workspace

from . import strategies as sst
from ._base import AsyncContract
from ._helpers import show
from ._hypothesis import call, profile_settings, run_in_thread
from ._settings import KitSettings

__all__ = ["FilesystemMachine", "PropertyContract", "StatefulFilesContract"]


class PropertyContract(AsyncContract):
    """Round trips of arbitrary payloads through the provider."""

    @pytest.fixture
    def hypothesis_settings(self, sandstorm_settings: KitSettings) -> settings:
        """The hypothesis settings for this session's profile."""
        return profile_settings(sandstorm_settings.hypothesis_profile)

    async def test_stdout_and_stderr_round_trip_text(
        self, provider: AsyncProvider, workspace: Workspace, hypothesis_settings: settings
    ) -> None:
        @hypothesis_settings
        @given(out=sst.output_text, err=sst.output_text)
        def check(out: str, err: str) -> None:
            program = (
                "import sys\n"
                f"sys.stdout.buffer.write({out.encode()!r})\n"
                f"sys.stderr.buffer.write({err.encode()!r})\n"
            )
            result = call(provider.run_in_workspace, workspace, program)
            assert (result.stdout, result.stderr) == (out, err), show(result)

        await run_in_thread(check)

    async def test_stdin_round_trips_bytes(
        self, provider: AsyncProvider, workspace: Workspace, hypothesis_settings: settings
    ) -> None:
        @hypothesis_settings
        @given(data=sst.stdin_bytes)
        def check(data: bytes) -> None:
            result = call(
                provider.run_in_workspace,
                workspace,
                "import sys, hashlib; d = sys.stdin.buffer.read(); "
                "print(len(d), hashlib.sha256(d).hexdigest())",
                stdin=data,
            )
            assert result.stdout == f"{len(data)} {hashlib.sha256(data).hexdigest()}\n", show(
                result
            )

        await run_in_thread(check)

    async def test_env_round_trips(
        self, provider: AsyncProvider, workspace: Workspace, hypothesis_settings: settings
    ) -> None:
        @hypothesis_settings
        @given(env=st.dictionaries(sst.env_names, sst.env_values, max_size=6))
        def check(env: dict[str, str]) -> None:
            result = call(
                provider.run_in_workspace,
                workspace,
                "import os, json; print(json.dumps({k: v for k, v in os.environ.items() "
                "if k.startswith('SSTK_')}))",
                env=env,
            )
            assert result.exit_code == 0, show(result)
            assert json.loads(result.stdout) == env

        await run_in_thread(check)

    async def test_shell_quoting_round_trips(
        self, provider: AsyncProvider, workspace: Workspace, hypothesis_settings: settings
    ) -> None:
        if Language.SHELL not in provider.languages:
            pytest.skip(f"{provider.name} does not declare language shell")

        @hypothesis_settings
        @given(
            text=st.text(
                st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), max_size=80
            )
        )
        def check(text: str) -> None:
            result = call(provider.exec, workspace, f"printf '%s' {shlex.quote(text)}")
            assert result.stdout == text, show(result)

        await run_in_thread(check)

    @pytest.mark.requires(Capability.FILES)
    async def test_file_bytes_round_trip(
        self, provider: AsyncProvider, workspace: Workspace, hypothesis_settings: settings
    ) -> None:
        @hypothesis_settings
        @given(data=sst.file_bytes, name=sst.file_names)
        def check(data: bytes, name: str) -> None:
            path = f"prop/{name}"
            call(provider.write_file, workspace, path, data)
            assert call(provider.read_file, workspace, path) == data
            result = call(
                provider.run_in_workspace,
                workspace,
                f"import hashlib; print(hashlib.sha256(open({path!r}, 'rb').read()).hexdigest())",
            )
            assert result.stdout == hashlib.sha256(data).hexdigest() + "\n", show(result)

        await run_in_thread(check)


class FilesystemMachine(RuleBasedStateMachine):
    """The workspace filesystem (under one fresh directory) against an in-memory model.

    Writes go through the file API; reads alternate between the file API and code in
    the workspace, so neither path checks itself.
    """

    provider: AsyncProvider
    workspace: Workspace

    paths = Bundle("paths")

    def __init__(self) -> None:
        super().__init__()
        self.root = f"fsm-{uuid.uuid4().hex[:8]}"
        self.model: dict[str, bytes] = {}
        self.dirs: set[str] = set()
        """Every directory a write created: deleting a file leaves its directory behind."""

    def _full(self, path: str) -> str:
        return posixpath.join(self.root, path)

    @rule(target=paths, directory=st.sampled_from(["", "a", "a/b", "c"]), name=sst.file_names)
    def new_path(self, directory: str, name: str) -> str:
        return posixpath.join(directory, name) if directory else name

    @rule(path=paths, data=sst.file_bytes)
    def write(self, path: str, data: bytes) -> None:
        if path in self.dirs or any(path.startswith(other + "/") for other in self.model):
            return  # a file cannot also be a directory
        call(self.provider.write_file, self.workspace, self._full(path), data)
        self.model[path] = data
        parent = posixpath.dirname(path)
        while parent:
            self.dirs.add(parent)
            parent = posixpath.dirname(parent)

    @precondition(lambda self: bool(self.model))
    @rule(data=st.data())
    def read_via_api(self, data: st.DataObject) -> None:
        path = data.draw(st.sampled_from(sorted(self.model)))
        assert call(self.provider.read_file, self.workspace, self._full(path)) == self.model[path]

    @precondition(lambda self: bool(self.model))
    @rule(data=st.data())
    def delete(self, data: st.DataObject) -> None:
        path = data.draw(st.sampled_from(sorted(self.model)))
        call(self.provider.delete_file, self.workspace, self._full(path))
        del self.model[path]

    @rule(path=paths)
    def read_missing(self, path: str) -> None:
        if path in self.model or path in self.dirs:
            return
        try:
            call(self.provider.read_file, self.workspace, self._full(path))
        except (FileNotFoundError, NotADirectoryError):  # the latter: a path under a file
            return
        raise AssertionError(f"reading {path!r}, which was never written or was deleted, succeeded")

    @invariant()
    def code_sees_the_model(self) -> None:
        if not self.model:
            return
        program = (
            "import hashlib, json, os\n"
            f"root = {self.root!r}\n"
            "out = {}\n"
            "for base, dirs, files in os.walk(root):\n"
            "    for f in files:\n"
            "        p = os.path.join(base, f)\n"
            "        digest = hashlib.sha256(open(p, 'rb').read()).hexdigest()\n"
            "        out[os.path.relpath(p, root)] = digest\n"
            "print(json.dumps(out))"
        )
        result = call(self.provider.run_in_workspace, self.workspace, program)
        assert result.exit_code == 0, show(result)
        expected = {path: hashlib.sha256(data).hexdigest() for path, data in self.model.items()}
        assert json.loads(result.stdout) == expected

    def teardown(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            call(self.provider.delete_file, self.workspace, self.root)


@pytest.mark.requires(Capability.FILES)
class StatefulFilesContract(AsyncContract):
    """Random sequences of file operations keep the workspace equal to a model."""

    async def test_filesystem_matches_model(
        self, provider: AsyncProvider, workspace: Workspace, sandstorm_settings: KitSettings
    ) -> None:
        profile = profile_settings(sandstorm_settings.hypothesis_profile)

        class Machine(FilesystemMachine):
            pass

        Machine.provider = provider
        Machine.workspace = workspace
        await run_in_thread(lambda: run_state_machine_as_test(Machine, settings=profile))
