"""The ``sandstorm`` command line: run code, list providers."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TextIO

from ._capabilities import Capability
from ._errors import ExecutionTimeout, ProviderConfigError, SandstormError
from ._registry import default_provider_name, installed_providers, load_provider_class

__all__ = ["main"]

EXTENSIONS = {
    ".py": "python",
    ".js": "javascript",
    ".mjs": "javascript",
    ".cjs": "javascript",
    ".ts": "typescript",
    ".sh": "shell",
    ".bash": "shell",
}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``sandstorm`` command; returns the process exit status.

    Ctrl-C ends it with status 130 and no traceback, once what it created is deleted.
    """
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args))
    except KeyboardInterrupt:
        print("sandstorm: interrupted", file=sys.stderr)
        return 130
    except SandstormError as exc:
        if getattr(args, "json", False):
            print(json.dumps({"error": type(exc).__name__, "message": str(exc)}))
        else:
            print(f"sandstorm: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sandstorm", description="Run untrusted code in sandboxes through one API."
    )
    parser.add_argument("--version", action="version", version=f"sandstorm {_version()}")
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="run code and print its output")
    source = run.add_mutually_exclusive_group()
    source.add_argument("-c", dest="code", help="the code to run")
    source.add_argument("file", nargs="?", help="a file to run ('-' reads stdin)")
    run.add_argument(
        "--provider", "-p", help="provider name (default: $SANDSTORM_PROVIDER or local)"
    )
    run.add_argument(
        "--language", "-l", help="language (default: from the file extension, else python)"
    )
    run.add_argument("--timeout", "-t", type=float, help="seconds before the run is killed")
    run.add_argument("--memory", type=int, help="memory limit in MiB")
    run.add_argument("--cpu", type=float, help="cpu limit in cores")
    run.add_argument("--json", action="store_true", help="print the whole result as JSON")
    run.set_defaults(handler=_run)

    providers = commands.add_parser("providers", help="list installed providers")
    providers.add_argument("--json", action="store_true", help="print JSON instead of a table")
    providers.set_defaults(handler=_providers)

    doctor = commands.add_parser(
        "doctor", help="show a provider's declaration, availability and isolation report"
    )
    doctor.add_argument("name", nargs="?", help="provider name (same as --provider)")
    doctor.add_argument("--provider", "-p", help="provider name")
    doctor.set_defaults(handler=_doctor)

    reap = commands.add_parser(
        "reap", help="delete workspaces sandstorm created that nobody will delete"
    )
    reap.add_argument("--provider", "-p", help="provider name")
    reap.add_argument(
        "--older-than",
        type=float,
        default=None,
        metavar="SECONDS",
        help="also delete sandstorm workspaces older than this (never a live process's)",
    )
    reap.add_argument(
        "--dry-run", action="store_true", help="list what would be deleted, delete nothing"
    )
    reap.set_defaults(handler=_reap)
    return parser


def _run(args: argparse.Namespace) -> int:
    from . import get_provider

    if args.code is not None:
        code, language = args.code, args.language or "python"
    elif args.file in (None, "-"):
        code, language = sys.stdin.read(), args.language or "python"
    else:
        path = Path(args.file)
        try:
            code = path.read_text(encoding="utf-8")
        except OSError as exc:
            print(f"sandstorm: cannot read {path}: {exc.strerror}", file=sys.stderr)
            return 2
        language = args.language or EXTENSIONS.get(path.suffix.lower())
        if language is None:
            known = ", ".join(sorted(EXTENSIONS))
            print(
                f"sandstorm: cannot tell the language of {path.name} from its extension "
                f"(known: {known}); pass --language",
                file=sys.stderr,
            )
            return 2
    with get_provider(args.provider) as provider:
        options: dict[str, Any] = {
            key: value
            for key, value in (("memory", args.memory), ("cpu", args.cpu))
            if value is not None
        }
        live = not args.json and Capability.STREAMING in provider.capabilities
        if live:
            options.update(on_stdout=_echo(sys.stdout), on_stderr=_echo(sys.stderr))
        try:
            result = provider.run(code, language=language, timeout=args.timeout, **options)
        except ExecutionTimeout as exc:
            if args.json:
                timed_out = {"error": "ExecutionTimeout", "message": str(exc)}
                print(json.dumps({**timed_out, "stdout": exc.stdout, "stderr": exc.stderr}))
                return 124
            if not live:
                sys.stdout.write(exc.stdout)
                sys.stderr.write(exc.stderr)
            print(f"sandstorm: {exc}", file=sys.stderr)
            return 124
    if args.json:
        print(result.model_dump_json(indent=2))
    else:
        if not live:
            sys.stdout.write(result.stdout)
            sys.stderr.write(result.stderr)
        for stream, truncated in (
            ("stdout", result.stdout_truncated),
            ("stderr", result.stderr_truncated),
        ):
            if truncated:
                print(f"sandstorm: {stream} was truncated", file=sys.stderr)
    return result.exit_code if 0 <= result.exit_code <= 255 else 1


def _echo(stream: TextIO) -> Callable[[str], None]:
    """An output callback that writes straight through to ``stream``."""

    def write(text: str) -> None:
        stream.write(text)
        stream.flush()

    return write


def _providers(args: argparse.Namespace) -> int:
    rows = []
    for entry in installed_providers():
        row: dict[str, object] = {
            "name": entry.name,
            "package": entry.package or "-",
            "version": entry.version or "-",
        }
        try:
            cls = load_provider_class(entry.name)
        except SandstormError as exc:
            reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            if len(reason) > 100:
                reason = reason[:99] + "…"
            row.update(capabilities=[], available=False, status=f"cannot load: {reason}")
            rows.append(row)
            continue
        row["capabilities"] = sorted(str(cap) for cap in cls.capabilities)
        row["languages"] = sorted(cls.languages)
        row["available"], row["status"] = _availability(cls)
        rows.append(row)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    header = ("NAME", "PACKAGE", "VERSION", "AVAILABLE", "CAPABILITIES")
    table = [header] + [
        (
            str(row["name"]),
            str(row["package"]),
            str(row["version"]),
            "yes" if row["available"] else f"no ({row['status']})",
            ",".join(row["capabilities"]) or "-",  # type: ignore[arg-type]
        )
        for row in rows
    ]
    widths = [max(len(line[i]) for line in table) for i in range(len(header) - 1)]
    for line in table:
        cells = [cell.ljust(width) for cell, width in zip(line, widths, strict=False)]
        print("  ".join([*cells, line[-1]]))
    return 0


def _availability(cls: type) -> tuple[bool, str]:
    from ._provider import AsyncProvider
    from ._sync import SyncProvider

    assert issubclass(cls, AsyncProvider)
    try:
        provider = SyncProvider(cls.from_config())
    except ProviderConfigError as exc:
        problem = "; ".join(p.message for p in exc.problems) or str(exc)
        return False, f"not configured: {problem}"
    except SandstormError as exc:
        return False, f"not configured: {exc}"
    with provider:
        try:
            ok = provider.is_available()
            reason = None if ok else _why_unavailable(provider.async_provider)
        except SandstormError as exc:
            return False, str(exc)
    return ok, "ok" if ok else reason or "not reachable"


def _why_unavailable(provider: Any) -> str | None:
    """The error that makes ``provider`` unavailable, when it tells one."""
    from ._sync import run_sync

    try:
        run_sync(provider._is_available())
    except SandstormError as exc:
        return f"{type(exc).__name__}: {exc}"
    except Exception as exc:  # a provider's own failure, described rather than raised
        return f"{type(exc).__name__}: {exc}"
    return None


def _doctor(args: argparse.Namespace) -> int:
    from . import get_provider
    from .protocols import ReportsIsolation

    if args.name and args.provider and args.name != args.provider:
        print("sandstorm: give the provider once (NAME or --provider)", file=sys.stderr)
        return 2
    with get_provider(args.name or args.provider) as provider:
        info = provider.info()
        print(f"provider:     {info.name}  {info.description}")
        print(f"languages:    {', '.join(sorted(info.languages))}")
        print(f"capabilities: {', '.join(sorted(info.capabilities)) or '-'}")
        available = provider.is_available()
        reason = None if available else _why_unavailable(provider.async_provider)
        status = "yes" if available else f"no ({reason or 'not reachable'})"
        print(f"available:    {status}")
        if isinstance(provider.async_provider, ReportsIsolation) and available:
            print("isolation:")
            print(provider.async_provider.isolation_report().summary())
    return 0 if available else 1


def _version() -> str:
    from . import __version__

    return __version__


def _reap(args: argparse.Namespace) -> int:
    from . import get_async_provider
    from ._sync import run_sync

    provider = get_async_provider(args.provider or default_provider_name())

    async def go() -> list[str]:
        async with provider:
            return await provider.reap(older_than=args.older_than, dry_run=args.dry_run)

    found = run_sync(go())
    verb = "would delete" if args.dry_run else "deleted"
    for workspace_id in found:
        print(f"{verb} {workspace_id}")
    print(f"{len(found)} workspace(s) {'to remove' if args.dry_run else 'removed'}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
