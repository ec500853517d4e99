"""Rootless mode: the provider run by an unprivileged user isolates with user namespaces."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

import sandstorm

SCRIPT = """
import json, sys
sys.path[:0] = {paths!r}
import sandstorm
# rootless, every sandbox runs as the host user's uid: that layer is knowingly given up
with sandstorm.get_provider("local", root={root!r}, allow_weaker=["uid_separation"]) as p:
    report = p.async_provider.isolation_report()
    run = p.run("import os, socket; print(os.getuid(), os.getpid(), socket.gethostname())")
    net = p.run("import socket\\ntry:\\n    socket.create_connection(('127.0.0.1', 22), 1)\\n"
                "except OSError as e:\\n    print(type(e).__name__)")
    env = p.run("import os; print(sorted(os.environ))")
    bomb = p.run("import os\\nfor _ in range(50):\\n    os.fork() or os._exit(0)\\nprint('ok')")
print(json.dumps({{"active": sorted(report.active), "run": run.stdout, "net": net.stdout,
                  "env": env.stdout, "bomb": bomb.stdout}}))
"""


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to become an unprivileged user")
def test_rootless_provider_isolates_with_user_namespaces() -> None:
    python = "/usr/bin/python3"
    if not os.access(python, os.X_OK) or shutil.which("setpriv") is None:
        pytest.skip("needs the system python3 and setpriv")
    src = str(Path(sandstorm.__file__).resolve().parents[1])
    site = [p for p in sys.path if p.endswith("site-packages")]
    base = Path(tempfile.mkdtemp(prefix="sandstorm-rootless-"))
    os.chmod(base, 0o777)
    try:
        script = base / "rootless.py"
        script.write_text(SCRIPT.format(paths=[src, *site], root=str(base / "state")))
        proc = subprocess.run(
            ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
             "env", "-i", "PATH=/usr/bin:/bin", f"HOME={base}", "SECRET_TOKEN=leak-me",
             python, str(script)],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        if proc.returncode != 0 and "ModuleNotFoundError" in proc.stderr:
            pytest.skip(f"the system python cannot import the environment: {proc.stderr[-300:]}")
        assert proc.returncode == 0, proc.stderr
        out = json.loads(proc.stdout.splitlines()[-1])
        assert {"userns", "netns", "pidns", "mountns"} <= set(out["active"])
        uid, pid, host = out["run"].split()
        assert (uid, host) == ("1000", "sandbox")
        assert int(pid) <= 3
        assert out["net"].strip() in {"ConnectionRefusedError", "OSError"}
        assert "SECRET_TOKEN" not in out["env"]
        assert out["bomb"] == "ok\n"
    finally:
        shutil.rmtree(base, ignore_errors=True)
