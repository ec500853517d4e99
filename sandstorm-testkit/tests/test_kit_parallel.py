"""Parallel sessions on one account: another process's workspaces are not blamed on the
provider under test.

The kit's "left a workspace" checks run against the ``subproc`` reference adapter while
another process (a Sandstorm application, as another kit session or CI job would be)
keeps creating workspaces and one-shot runs on the same state root. The checks must pass;
the mutants ``run-leaks-a-scratch-workspace`` and ``create-makes-two``
(kit_mutants.py) prove they still catch a leak of this process's adapter.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

from test_kit_mutants import _kit, _project

LEAK_CHECKS = (
    "test_one_shot_runs_leave_no_workspace or test_aclose_stops_calls_in_flight_and_cleans_up"
    " or test_run_refuses_bad_arguments or test_create_workspace_refuses_bad_arguments"
)

# another application on the same root: creates and restores workspaces every few
# milliseconds (at most 10 kept), runs one-shot code, until told to stop; then deletes
# what it made
CHURN = textwrap.dedent(
    """
    import os, sys, time
    sys.path.insert(0, os.getcwd())
    import sandstorm
    sandstorm.register_provider("subproc", "subproc_provider:SubprocProvider")
    root, stop = sys.argv[1], sys.argv[2]
    with sandstorm.get_provider("subproc", root=root) as provider:
        source = provider.create_workspace(labels={"app": "churn"})
        snapshot = provider.snapshot(source)
        kept = []
        created = 0
        while not os.path.exists(stop):
            kept.append(provider.create_workspace(labels={"app": "churn"}))
            # as another kit session restores: no labels, a name of that session's
            kept.append(provider.restore(snapshot, name=f"sstk-otherrun-{created}"))
            created += 1
            while len(kept) > 10:
                provider.delete_workspace(kept.pop(0))
            provider.run("pass")
            time.sleep(0.02)
        for workspace in [*kept, source]:
            provider.delete_workspace(workspace)
        provider.delete_snapshot(snapshot)
    print(created)
    """
)


def test_leak_checks_ignore_another_process_on_the_same_account(tmp_path: Path) -> None:
    directory = _project(tmp_path / "subproc", None)
    root = json.loads((directory / "subproc.json").read_text())["root"]
    stop = tmp_path / "stop"
    churn = subprocess.Popen(
        [sys.executable, "-c", CHURN, root, str(stop)],
        cwd=directory,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        done = _kit(directory, "-k", LEAK_CHECKS, timeout=300)
    finally:
        stop.touch()
        out, err = churn.communicate(timeout=60)
    assert churn.returncode == 0, err[-2000:]
    assert int(out) >= 10, "the other process hardly ran: the test proves nothing"
    report = json.loads((directory / "report.json").read_text())
    assert report["totals"]["passed"] >= 4, report["totals"]
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
