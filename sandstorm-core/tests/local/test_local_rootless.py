"""Rootless mode: the provider run by an unprivileged user isolates with user namespaces."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable

RootlessRun = Callable[..., subprocess.CompletedProcess[str]]

SCRIPT = """
import json, sys
sys.path[:0] = {paths!r}
import sandstorm
# rootless, every sandbox runs as the host user's uid and no loop device can hold a disk
# image: those layers are knowingly given up
weaker = ["uid_separation", "disk_quota"]
with sandstorm.get_provider("local", root={root!r}, allow_weaker=weaker) as p:
    report = p.async_provider.isolation_report()
    run = p.run("import os, socket; print(os.getuid(), os.getpid(), socket.gethostname())")
    net = p.run("import socket\\ntry:\\n    socket.create_connection(('127.0.0.1', 22), 1)\\n"
                "except OSError as e:\\n    print(type(e).__name__)")
    env = p.run("import os; print(sorted(os.environ))")
    bomb = p.run("import os\\nfor _ in range(50):\\n    os.fork() or os._exit(0)\\nprint('ok')")
    code = p.run("import sys; print('out'); sys.exit(3)")
    fork = p.run("import os, sys\\npid = os.fork()\\nif pid == 0:\\n"
                 "    print('child', flush=True)\\n    sys.exit(5)\\n"
                 "_, status = os.waitpid(pid, 0)\\nprint('parent', status >> 8)")
print(json.dumps({{"active": sorted(report.active), "run": run.stdout, "net": net.stdout,
                  "env": env.stdout, "bomb": bomb.stdout, "code": [code.stdout, code.exit_code],
                  "fork": [fork.stdout, fork.exit_code]}}))
"""


def test_rootless_provider_isolates_with_user_namespaces(run_rootless: RootlessRun) -> None:
    proc = run_rootless(SCRIPT, "SECRET_TOKEN=leak-me")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.splitlines()[-1])
    assert {"userns", "netns", "pidns", "mountns"} <= set(out["active"])
    uid, pid, host = out["run"].split()
    assert (uid, host) == ("1000", "sandbox")
    assert int(pid) <= 3
    assert out["net"].strip() in {"ConnectionRefusedError", "OSError"}
    assert "SECRET_TOKEN" not in out["env"]
    assert out["bomb"] == "ok\n"
    # the exit reported by init under a supervisor: the code's own, never a forked child's
    assert out["code"] == ["out\n", 3]
    assert out["fork"] == ["child\nparent 5\n", 0]
