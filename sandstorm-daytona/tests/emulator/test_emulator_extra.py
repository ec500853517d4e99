"""The emulator is an extra: the provider imports none of the server stack, and without
the stack the CLI says which extra to install."""

from __future__ import annotations

import json
import subprocess
import sys

SERVER_STACK = ("starlette", "uvicorn", "python_multipart", "multipart")

_BLOCK = f"""
import sys
for name in {SERVER_STACK!r}:
    sys.modules[name] = None  # what an install without the extra looks like to import
"""


def _run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


def test_the_provider_imports_no_server_stack() -> None:
    probe = (
        "import sys, json\n"
        "import sandstorm, sandstorm_daytona\n"
        "provider = sandstorm.get_async_provider('daytona', api_key='k',"
        " api_url='http://127.0.0.1:9/api')\n"
        f"print(json.dumps(sorted(m for m in {SERVER_STACK!r} if m in sys.modules)))"
    )
    done = _run(probe)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[-1]) == []


def test_the_provider_works_without_the_server_stack() -> None:
    probe = _BLOCK + (
        "import sandstorm, sandstorm_daytona\n"
        "p = sandstorm.get_async_provider('daytona', api_key='k',"
        " api_url='http://127.0.0.1:9/api')\n"
        "print(type(p).__name__)"
    )
    done = _run(probe)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith("DaytonaProvider")


def test_the_cli_names_the_extra_when_the_stack_is_missing() -> None:
    code = _BLOCK + (
        "from sandstorm_daytona._cli import main\nraise SystemExit(main(['emulator']))\n"
    )
    done = _run(code)
    assert done.returncode == 2
    assert "pip install 'sandstorm-daytona[emulator]'" in done.stderr
    assert "starlette is missing" in done.stderr
    assert "Traceback" not in done.stderr


def test_importing_the_emulator_without_the_stack_names_the_extra() -> None:
    done = _run(_BLOCK + "import sandstorm_daytona.emulator\n")
    assert done.returncode != 0
    assert "ModuleNotFoundError" in done.stderr
    assert "sandstorm-daytona[emulator]" in done.stderr
