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

    mcp = commands.add_parser(
        "mcp",
        help="serve a provider to MCP clients (stdio, or streamable HTTP with --http)",
        description="An MCP server whose tools run code in a sandbox; see docs/mcp.md.",
    )
    mcp.add_argument("--provider", "-p", help="provider name (default: $SANDSTORM_PROVIDER)")
    mcp.add_argument("--http", action="store_true", help="serve streamable HTTP instead of stdio")
    mcp.add_argument("--host", default="127.0.0.1", help="HTTP address (default: 127.0.0.1)")
    mcp.add_argument("--port", type=int, default=8000, help="HTTP port (default: 8000; 0: any)")
    mcp.add_argument(
        "--allow-remote",
        action="store_true",
        help="allow a non-loopback --host (also needs a token)",
    )
    mcp.add_argument(
        "--token-file",
        help="file holding the bearer token HTTP clients must send "
        "(default: $SANDSTORM_MCP_TOKEN; never pass a token on the command line)",
    )
    mcp.add_argument(
        "--persistent",
        metavar="NAME",
        help="work in the workspace called NAME (made if missing, kept after the session)",
    )
    mcp.add_argument(
        "--max-output", type=int, default=20_000, help="characters per tool result (20000)"
    )
    mcp.add_argument("--timeout", type=float, default=30.0, help="default seconds per call (30)")
    mcp.add_argument(
        "--max-timeout", type=float, default=300.0, help="most seconds a call may ask for (300)"
    )
    mcp.add_argument(
        "--max-concurrency", type=int, default=4, help="calls of one session at once (4)"
    )
    mcp.set_defaults(handler=_mcp)
    return parser


def _mcp(args: argparse.Namespace) -> int:
    import os

    try:
        import mcp  # noqa: F401
    except ImportError:
        print(
            "sandstorm: the MCP server needs the mcp extra: pip install 'sandstorm-core[mcp]'",
            file=sys.stderr,
        )
        return 2
    from .mcp import ServerOptions, serve

    token = os.environ.get("SANDSTORM_MCP_TOKEN") or None
    if args.token_file:
        try:
            token = Path(args.token_file).read_text(encoding="utf-8").strip() or None
        except OSError as exc:
            print(f"sandstorm: cannot read {args.token_file}: {exc.strerror}", file=sys.stderr)
            return 2
    try:
        options = ServerOptions(
            max_output=args.max_output,
            default_timeout=args.timeout,
            max_timeout=args.max_timeout,
            max_concurrency=args.max_concurrency,
            persistent=args.persistent,
        )
        serve(
            args.provider,
            transport="http" if args.http else "stdio",
            options=options,
            host=args.host,
            port=args.port,
            token=token,
            allow_remote=args.allow_remote,
        )
    except ValueError as exc:
        print(f"sandstorm: {exc}", file=sys.stderr)
        return 2
    return 0


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
        row["available"], row["status"], cls = _availability(cls)
        row["capabilities"] = sorted(str(cap) for cap in cls.capabilities)
        row["languages"] = sorted(cls.languages)
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


def _availability(cls: type) -> tuple[bool, str, Any]:
    """Whether the provider is available, why (not), and its (instance's) declaring class."""
    from ._provider import AsyncProvider
    from ._sync import SyncProvider

    assert issubclass(cls, AsyncProvider)
    try:
        provider = SyncProvider(cls.from_config())
    except ProviderConfigError as exc:
        problem = "; ".join(p.message for p in exc.problems) or str(exc)
        return False, f"not configured: {problem}", cls
    except SandstormError as exc:
        return False, f"not configured: {exc}", cls
    with provider:
        try:
            ok = provider.is_available()
            reason = None if ok else _why_unavailable(provider.async_provider)
        except SandstormError as exc:
            return False, str(exc), cls
        members = _members(provider.async_provider)
    status = "ok" if ok else reason or "not reachable"
    if members:
        status += "; members: " + ", ".join(
            f"{row.name}={row.state if row.available else 'unavailable'}" for row in members
        )
    return ok, status, type(provider.async_provider)


def _members(provider: Any) -> list[Any]:
    """The member health rows of a ``router`` provider (probed), else ``[]``."""
    from ._sync import run_sync

    health = getattr(provider, "health", None)
    if health is None:
        return []
    return list(run_sync(health(probe=True)))


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
        members = _members(provider.async_provider)
        if members:
            print("members:")
            for row in members:
                up = "available" if row.available else "unavailable"
                blocked = f" ({row.blocked})" if row.blocked else ""
                latency = f", ~{row.latency:.3f}s/run" if row.latency is not None else ""
                print(
                    f"  {row.name:<12} {row.provider:<10} trust={row.trust:<8} "
                    f"breaker={row.state}{blocked}, {up}{latency}"
                )
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
