"""``sandstorm-daytona``: command-line tools of the Daytona package.

``sandstorm-daytona emulator [--host 127.0.0.1] [--port N] [--api-key K] ...`` serves a
Daytona-compatible API that executes code on the ``local`` engine and prints the
``api_url`` and key to use.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sandstorm-daytona", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    emu = commands.add_parser(
        "emulator",
        help="serve a Daytona-compatible API on loopback",
        description="Serve a Daytona-compatible API that really executes code. Point the "
        "official SDK at the printed api_url with the printed key.",
    )
    emu.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    emu.add_argument("--port", type=int, default=0, help="port (default: a free one)")
    emu.add_argument(
        "--api-key",
        action="append",
        default=[],
        metavar="KEY[=ORG]",
        help="accepted bearer token, optionally with its organisation (repeatable; "
        "default: one random key for org-default)",
    )
    emu.add_argument("--provider", default="local", help="sandstorm provider that runs the code")
    emu.add_argument("--network", choices=("blocked", "host"), default="blocked")
    emu.add_argument(
        "--output-cap",
        type=int,
        default=64,
        metavar="MIB",
        help="MiB of stdout and of stderr kept per command (default 64); past it the output "
        "ends with a truncation notice, past twice it the command is killed",
    )
    emu.add_argument(
        "--transition-delay",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="show transitional states (starting, stopping, ...) this long",
    )
    emu.add_argument(
        "--rate-limit",
        action="append",
        default=[],
        metavar="NAME=LIMIT/SECONDS",
        help="per-key throttler: authenticated, sandbox-create or sandbox-lifecycle",
    )
    emu.add_argument(
        "--shell",
        default=None,
        metavar="SHELL",
        help="shell that runs commands (zsh, bash, dash or a path; default: like the daemon, "
        "the first of zsh and bash listed in the sandbox's /etc/shells, else sh)",
    )
    emu.add_argument(
        "--exact-output",
        action="store_true",
        help="session output as the command wrote it, without the daemon's line relabelling "
        "(newline after an unterminated last line, NUL bytes dropped under bash and dash)",
    )
    emu.add_argument(
        "--no-analytics-api",
        action="store_true",
        help="no Analytics API in /config: the API's telemetry endpoints serve the readings",
    )
    emu.add_argument(
        "--no-system-metrics",
        action="store_true",
        help="answer 404 to the toolbox's /system/metrics, like daemons older than it",
    )
    emu.add_argument("--max-sandboxes", type=int, default=None)
    emu.add_argument("--total-cpu", type=int, default=None, help="vCPU per organisation")
    emu.add_argument("--total-memory", type=int, default=None, help="GiB per organisation")
    emu.add_argument("--total-disk", type=int, default=None, help="GiB per organisation")
    emu.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="[METHOD ]PATH=KIND[@RATE][:SECONDS]",
        help="inject faults, e.g. '/api/sandbox*=503@0.2', 'POST /api/sandbox=drop@0.1', "
        "'*=latency@1:0.25', '/toolbox/*=429@0.5:2'",
    )
    emu.add_argument("--fault-seed", type=int, default=0)
    return parser


def _config(args: argparse.Namespace) -> object:
    from .emulator import EmulatorConfig, FaultRule, Faults, Quotas, RateLimit

    values: dict[str, object] = {
        "host": args.host,
        "port": args.port,
        "provider": args.provider,
        "network": args.network,
        "output_cap": args.output_cap << 20,
        "transition_delay": args.transition_delay,
        "shell": args.shell,
        "relabel_output": not args.exact_output,
        "analytics_api": not args.no_analytics_api,
        "system_metrics": not args.no_system_metrics,
    }
    if args.api_key:
        keys = {}
        for item in args.api_key:
            key, _, org = item.partition("=")
            keys[key] = org or "org-default"
        values["api_keys"] = keys
    limits = {}
    for item in args.rate_limit:
        name, _, spec = item.partition("=")
        limit, _, ttl = spec.partition("/")
        if not name or not limit.isdigit():
            raise ValueError(f"--rate-limit {item!r} is not NAME=LIMIT/SECONDS")
        limits[name] = RateLimit(limit=int(limit), ttl=float(ttl or 60))
    values["rate_limits"] = limits
    values["quotas"] = Quotas(
        max_sandboxes=args.max_sandboxes,
        total_cpu=args.total_cpu,
        total_memory=args.total_memory,
        total_disk=args.total_disk,
    )
    values["faults"] = Faults(
        seed=args.fault_seed, rules=tuple(FaultRule.parse(spec) for spec in args.fault)
    )
    return EmulatorConfig.model_validate(values)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``sandstorm-daytona`` console script."""
    args = _parser().parse_args(argv)
    from pydantic import ValidationError

    try:
        from .emulator import EmulatorConfig, RunningEmulator, serve
    except ModuleNotFoundError as exc:
        print(f"sandstorm-daytona: {exc}", file=sys.stderr)
        return 2

    try:
        config = _config(args)
    except (ValueError, ValidationError) as exc:
        print(f"sandstorm-daytona: invalid option: {exc}", file=sys.stderr)
        return 2
    assert isinstance(config, EmulatorConfig)

    def ready(emu: RunningEmulator) -> None:
        print(f"DAYTONA_API_URL={emu.api_url}", flush=True)
        print(f"DAYTONA_API_KEY={emu.api_key}", flush=True)
        for key, org in list(emu.config.api_keys.items())[1:]:
            print(f"# another key for {org}: {key}", flush=True)

    try:
        serve(config, on_ready=ready)
    except KeyboardInterrupt:
        pass
    except OSError as exc:
        print(f"sandstorm-daytona: cannot serve on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
