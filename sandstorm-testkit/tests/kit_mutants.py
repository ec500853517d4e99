"""One-bug variants of the ``subproc`` reference adapter (examples/subproc_provider.py).

Each mutant is one realistic bug: a text replacement in the adapter or in the copy of the
``sandstorm.adapters`` helpers it runs on, and the kit tests (a ``-k`` expression) that
must catch it. ``build`` writes a mutant (or, with ``None``, the adapter as shipped) into a
directory, importing its helpers from a local copy so helper bugs stay in that directory.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ADAPTER = ROOT / "examples" / "subproc_provider.py"
HELPERS = ROOT / "sandstorm-core" / "src" / "sandstorm" / "adapters"

A, P, S = "adapter", "process", "store"


@dataclass(frozen=True)
class Mutant:
    id: str
    where: str
    old: str
    new: str
    catch: str
    """-k expression selecting the kit tests that must fail."""
    count: int = 1
    """Which occurrence of ``old`` to replace (1-based)."""


TIMEOUT = "test_timeout_raises_with_partial_output"
FLOOD = "test_output_flood_is_capped"
SNAPS = "TestSnapshots"
WS_FIELDS = "test_workspace_fields"
ENOENT = "raise WorkspaceNotFound(workspace_id, self.provider)"

MUTANTS: tuple[Mutant, ...] = (
    # ---------------------------------------------------------------- the adapter itself
    Mutant("timeout-ignored", A, "timeout=request.timeout", "timeout=3600", TIMEOUT),
    Mutant(
        # a "faster exit": atexit and the streams kept, the interpreter's teardown skipped
        "python-exit-skips-teardown",
        A,
        "[*ARGV[request.language], request.code],",
        "[*ARGV[request.language], request.code + ("
        "'\\nimport atexit as _a, os as _o, sys as _s\\n_a._run_exitfuncs()\\n"
        "_s.stdout.flush()\\n_s.stderr.flush()\\n_o._exit(0)\\n'"
        " if request.language == 'python' else '')],",
        "test_a_file_left_open_keeps_what_was_written or test_python_output_of_c_code_is_kept",
    ),
    Mutant(
        # a "faster exit" that tells a status pipe (fd 9) the code is done, unchecked
        "exit-note-into-a-reused-descriptor",
        A,
        "[*ARGV[request.language], request.code],",
        "[*ARGV[request.language], request.code + ("
        "'\\nimport os as _o\\ntry:\\n _o.write(9, b\"x0\")\\nexcept OSError:\\n pass\\n'"
        " if request.language == 'python' else '')],",
        "test_files_the_code_leaves_open_hold_only_what_it_wrote",
    ),
    Mutant(
        # the exit path of the code's process runs in a process the code forked too
        "a-forked-child-ends-the-run",
        A,
        "[*ARGV[request.language], request.code],",
        "[*ARGV[request.language], ("
        "'import atexit as _a, os as _o; _p = _o.getpid(); "
        "_a.register(lambda: _o.getpid() != _p and _o.killpg(0, 9)); '"
        " if request.language == 'python' else '') + request.code],",
        "test_a_process_the_code_forks_ends_on_its_own",
    ),
    Mutant(
        "run-env-dropped",
        A,
        "self.store.env(workspace), request.env)",
        "self.store.env(workspace))",
        "test_env_reaches_code",
    ),
    Mutant(
        "workspace-env-dropped",
        A,
        "self.store.env(workspace), request.env)",
        "request.env)",
        "test_workspace_env",
    ),
    Mutant(
        "host-env-leaks",
        A,
        "env=clean_env(",
        "env=dict(os.environ) | clean_env(",
        "test_host_environment_does_not_leak",
    ),
    Mutant(
        "run-leaks-a-scratch-workspace",
        A,
        "cwd = self.store.files(workspace)  # WorkspaceNotFound once deleted\n",
        "cwd = self.store.files(workspace)  # WorkspaceNotFound once deleted\n"
        "        self.store.create(persistent=False)  # scratch space, never deleted\n",
        "test_one_shot_runs_leave_no_workspace",
    ),
    Mutant(
        "create-makes-two",
        A,
        "        return self.store.create(\n",
        "        self.store.create(labels=spec.labels)  # a first try, left behind\n"
        "        return self.store.create(\n",
        "test_one_shot_runs_leave_no_workspace or test_aclose_stops_calls_in_flight",
    ),
    Mutant("stdin-dropped", A, "stdin=request.stdin", "stdin=None", "test_stdin_text"),
    Mutant("cap-ignored", A, "output_cap=self.config.output_cap", "output_cap=1 << 40", FLOOD),
    Mutant(
        "result-without-workspace",
        A,
        "workspace_id=workspace.id, provider=",
        "workspace_id=None, provider=",
        "test_run_in_workspace_reports_workspace",
    ),
    Mutant(
        "language-not-reported",
        A,
        "language=request.language",
        'language="python"',
        "test_hello_world",
    ),
    Mutant("name-dropped", A, "name=spec.name,", "name=None,", WS_FIELDS),
    Mutant("labels-dropped", A, "labels=spec.labels,", "labels={},", WS_FIELDS),
    Mutant(
        "always-persistent",
        A,
        "persistent=spec.persistent",
        "persistent=True",
        "test_ephemeral_workspace_lifecycle",
    ),
    Mutant(
        "delete-is-a-no-op",
        A,
        "await asyncio.to_thread(self.store.delete, workspace_id)",
        "self.store.get(workspace_id)",
        "test_delete_then_not_found",
    ),
    Mutant(
        "list-nothing",
        A,
        "return self.store.list_workspaces()",
        "return []",
        "TestWorkspaces and test_listed_until_deleted",
    ),
    Mutant(
        "shell-is-python",
        A,
        '"shell": ["/bin/sh", "-c"]',
        '"shell": [sys.executable, "-c"]',
        "test_hello_world",
    ),
    # ---------------------------------------------------------------- the process runner
    Mutant(
        "truncation-ends-in-fffd",
        P,
        "decoder.decode(data, final=not truncated)",
        "decoder.decode(data, final=True)",
        "test_multibyte_character_across_the_cap",
    ),
    Mutant(
        "invalid-bytes-dropped",
        P,
        'getincrementaldecoder("utf-8")("replace")\n    return',
        'getincrementaldecoder("utf-8")("ignore")\n    return',
        "test_arbitrary_bytes_in_output",
    ),
    Mutant(
        "invalid-bytes-crash",
        P,
        'getincrementaldecoder("utf-8")("replace")\n    return',
        'getincrementaldecoder("utf-8")("strict")\n    return',
        "test_arbitrary_bytes_in_output",
    ),
    Mutant(
        "timeout-kills-only-the-child",
        P,
        "            kill()\n            await proc.wait()",
        "            proc.kill()\n            await proc.wait()",
        "test_timeout_kills_the_process_tree",
    ),
    Mutant(
        "tree-kill-misses-setsid-daemons",
        P,
        "    grew = True\n",
        "    grew = False\n",
        "test_timeout_kills_the_process_tree",
    ),
    Mutant(
        "timeout-returns-a-result",
        P,
        "raise ExecutionTimeout(timeout, out, err, workspace_id) from None",
        "return ProcessResult(out, err, 124, timeout)",
        TIMEOUT,
    ),
    Mutant(
        "timeout-loses-partial-output",
        P,
        "raise ExecutionTimeout(timeout, out, err, workspace_id)",
        'raise ExecutionTimeout(timeout, "", "", workspace_id)',
        TIMEOUT,
    ),
    Mutant(
        "timeout-never-fires",
        P,
        "async with asyncio.timeout(timeout):",
        "async with asyncio.timeout(None):",
        TIMEOUT,
    ),
    Mutant("truncation-not-flagged", P, "return self.seen > self.cap", "return False", FLOOD),
    Mutant(
        "cap-off-by-one",
        P,
        "room = self.cap - len(self.kept)",
        "room = self.cap + 1 - len(self.kept)",
        FLOOD,
    ),
    Mutant(
        "flood-not-killed", P, "if sink.seen > 2 * output_cap and not flooded:", "if False:", FLOOD
    ),
    Mutant(
        "negative-exit-code",
        P,
        "exit_code=128 + signum if signum is not None else code",
        "exit_code=code",
        FLOOD,
    ),
    Mutant(
        "signal-not-reported",
        P,
        "signum = -code if code < 0 else None",
        "signum = None",
        "test_killed_by_signal",
    ),
    Mutant(
        "stderr-into-stdout",
        P,
        "pump(proc.stderr, sinks[1])",
        "pump(proc.stderr, sinks[0])",
        "test_stdout_and_stderr_are_separate",
    ),
    Mutant(
        "stdin-never-closed", P, "        proc.stdin.close()\n", "        pass\n", "test_stdin_text"
    ),
    Mutant(
        "stdin-as-latin1-text",
        P,
        'proc.stdin.write(stdin or b"")',
        'proc.stdin.write((stdin or b"").decode("latin-1").encode())',
        "test_stdin_bytes",
    ),
    Mutant(
        "env-from-host",
        P,
        'env = {**BASE_ENV, "HOME": os.fspath(home)}',
        'env = {**os.environ, "HOME": os.fspath(home)}',
        "test_host_environment_does_not_leak",
    ),
    Mutant(
        "env-layers-reversed",
        P,
        "for layer in layers:",
        "for layer in reversed(layers):",
        "test_workspace_env",
    ),
    Mutant(
        "duration-zero",
        P,
        "duration=time.monotonic() - started",
        "duration=0.0",
        "test_result_fields",
    ),
    # ---------------------------------------------------------------- the directory store
    Mutant(
        "deleted-workspace-still-resolves",
        S,
        ' or not (path / "meta.json").is_file()',
        "",
        "test_deleted_workspace_object_is_refused",
    ),
    Mutant(
        "delete-copies-instead-of-moving",
        S,
        "os.rename(path, hidden)",
        "shutil.copytree(path, hidden)",
        "test_delete_then_not_found",
    ),
    Mutant(
        "absolute-fileinfo-path",
        S,
        "path=(directory / entry.name).relative_to(base).as_posix()",
        "path=str(directory / entry.name)",
        "test_list_files",
    ),
    Mutant(
        "is-dir-inverted",
        S,
        "is_dir=stat.S_ISDIR(st.st_mode)",
        "is_dir=not stat.S_ISDIR(st.st_mode)",
        "test_list_files",
    ),
    Mutant("size-zero", S, "size=st.st_size", "size=0", "test_list_files"),
    Mutant(
        "delete-missing-file-succeeds",
        S,
        "target.unlink()",
        "target.unlink(missing_ok=True)",
        "test_delete_missing_file_raises",
    ),
    Mutant(
        "delete-tree-fails",
        S,
        "shutil.rmtree(target)",
        "target.rmdir()",
        "test_delete_file_and_tree",
    ),
    Mutant(
        "no-parent-directories",
        S,
        "target.parent.mkdir(parents=True, exist_ok=True)",
        "pass",
        "test_parent_directories_are_created",
    ),
    Mutant(
        "write-appends",
        S,
        "target.write_bytes(data)",
        'target.open("ab").write(data)',
        "test_overwrite_replaces_content",
    ),
    Mutant(
        "read-as-text",
        S,
        "return target.read_bytes()",
        'return target.read_text(errors="replace").encode()',
        "test_ten_mib_round_trip",
    ),
    Mutant(
        "restore-links-the-snapshot",
        S,
        'shutil.copytree(source, path / "files", symlinks=True)',
        'os.symlink(source, path / "files")',
        "test_restored_workspaces_share_nothing",
    ),
    Mutant(
        "snapshot-is-a-link",
        S,
        'shutil.copytree(source, path / "files", symlinks=True)',
        'os.symlink(source, path / "files")',
        "test_restore_reproduces_files",
        count=2,
    ),
    Mutant(
        "restored-copies-hardlinked",
        S,
        'shutil.copytree(source, path / "files", symlinks=True)',
        'shutil.copytree(source, path / "files", symlinks=True, copy_function=os.link)',
        "test_restored_workspaces_share_nothing",
    ),
    Mutant(
        "snapshot-reused",
        S,
        "        source = self.files(workspace_id)\n",
        "        source = self.files(workspace_id)\n        for old in self.list_snapshots():\n"
        "            if old.workspace_id == workspace_id:\n                return old\n",
        "test_each_snapshot_restores_its_own_state",
    ),
    Mutant(
        "restore-from-live-workspace",
        S,
        'return self.create(name=name, source=path / "files")',
        'meta = json.loads((path / "meta.json").read_text())\n'
        '        return self.create(name=name, source=self.files(meta["workspace_id"]))',
        "test_restore_reproduces_files",
    ),
    Mutant(
        "snapshots-not-listed",
        S,
        "return sorted(found, key=lambda snap: snap.created_at)",
        "return []",
        f"{SNAPS} and test_listed_until_deleted",
    ),
    Mutant(
        "snapshot-delete-no-op",
        S,
        "        os.rename(path, hidden)\n        shutil.rmtree(hidden, "
        "ignore_errors=True)\n\n    @staticmethod",
        "        pass\n\n    @staticmethod",
        f"{SNAPS} and test_listed_until_deleted",
    ),
    Mutant("snapshot-size-zero", S, "size=max(size, 1)", "size=0", "test_snapshot_fields"),
    Mutant(
        "snapshot-wrong-source",
        S,
        "workspace_id=workspace_id,\n            created_at",
        "workspace_id=snapshot_id,\n            created_at",
        "test_snapshot_fields",
    ),
    Mutant(
        "snapshot-name-dropped",
        S,
        "            name=name,\n        )\n        _write_json",
        "            name=None,\n        )\n        _write_json",
        "test_snapshot_fields",
    ),
    Mutant(
        "naive-created-at",
        S,
        "created_at=datetime.now(UTC),\n            labels",
        "created_at=datetime.now(),\n            labels",
        WS_FIELDS,
    ),
    Mutant(
        "not-found-message-as-id",
        S,
        ENOENT,
        'raise WorkspaceNotFound(f"no workspace {workspace_id!r}", self.provider)',
        "test_unknown_workspace",
    ),
    Mutant(
        "not-found-untyped",
        S,
        ENOENT,
        "raise FileNotFoundError(workspace_id)",
        "test_unknown_workspace",
    ),
    Mutant(
        "snapshot-not-found-message-as-id",
        S,
        "raise SnapshotNotFound(snapshot_id)",
        'raise SnapshotNotFound("snapshot " + snapshot_id)',
        f"{SNAPS} and test_listed_until_deleted",
    ),
    Mutant("create-env-not-stored", S, '"env": dict(env or {})', '"env": {}', "test_workspace_env"),
    Mutant("labels-not-stored", S, "labels=dict(labels or {}),", "labels={},", WS_FIELDS),
    Mutant(
        "network-claims-blocked",
        S,
        'network=network or NetworkPolicy(mode="host")',
        "network=network or NetworkPolicy()",
        "test_reported_network_is_honest",
    ),
)


def _helpers_source(mutant: Mutant | None) -> str:
    parts = []
    for name, where in (("_process.py", P), ("_store.py", S)):
        text = (HELPERS / name).read_text()
        if mutant is not None and mutant.where == where:
            text = _replace(text, mutant)
        text = text.replace("from __future__ import annotations\n", "")
        text = text.replace("from .._", "from sandstorm._")
        text = text.replace("from ._process import kill_process_tree\n", "")
        parts.append(text)
    return "from __future__ import annotations\n" + "\n".join(parts)


def _replace(text: str, mutant: Mutant) -> str:
    pieces = text.split(mutant.old)
    if len(pieces) <= mutant.count:
        raise AssertionError(f"mutant {mutant.id}: {mutant.old!r} not found in {mutant.where}")
    head = mutant.old.join(pieces[: mutant.count])
    tail = mutant.old.join(pieces[mutant.count :])
    return head + mutant.new + tail


def build(directory: Path, mutant: Mutant | None) -> None:
    """Write ``subproc_provider.py`` (+ its helpers) for ``mutant`` (None: as shipped)."""
    adapter = ADAPTER.read_text()
    adapter = re.sub(
        r"from sandstorm\.adapters import ([^\n]+)", r"from subproc_helpers import \1", adapter
    )
    if mutant is not None and mutant.where == A:
        adapter = _replace(adapter, mutant)
    (directory / "subproc_provider.py").write_text(adapter)
    (directory / "subproc_helpers.py").write_text(_helpers_source(mutant))
