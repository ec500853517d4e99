"""Image builds (``buildInfo.dockerfileContent``): the steps the emulator can apply to a
workspace, and a clear refusal of the others.

The engine has one base filesystem, so ``FROM`` names no image the emulator can pull:
it is accepted once (the engine's base stands in for it). ``ENV`` becomes the sandbox's
environment (the create request's ``env`` wins), ``RUN`` runs in the new workspace with
that environment (a failing step fails the create), and the metadata-only instructions
(``LABEL``, ``EXPOSE``, ``CMD``, ``ENTRYPOINT``: the daemon replaces the entrypoint of a
real sandbox too) change nothing. Everything else (``COPY``, ``ADD``, ``WORKDIR``,
``USER``, ``ARG``, a second ``FROM``, ...) is refused with a 400 naming the line, rather
than silently ignored.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass, field

from ._errors import ApiError

__all__ = ["BuildPlan", "plan_build"]

_NO_EFFECT = frozenset({"LABEL", "EXPOSE", "CMD", "ENTRYPOINT"})


@dataclass(frozen=True)
class BuildPlan:
    """What a Dockerfile asks of a new workspace: environment and commands, in order."""

    env: dict[str, str] = field(default_factory=dict)
    run: tuple[str, ...] = ()


def _lines(dockerfile: str) -> list[tuple[int, str]]:
    """Logical lines (continuations joined, comments and blanks dropped) with their
    first physical line number."""
    logical: list[tuple[int, str]] = []
    pending: list[str] = []
    start = 0
    for number, raw in enumerate(dockerfile.splitlines(), start=1):
        stripped = raw.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if not pending:
            start = number
        if stripped.endswith("\\"):
            pending.append(stripped[:-1])
            continue
        pending.append(stripped)
        logical.append((start, " ".join(part for part in pending if part)))
        pending = []
    if pending:
        logical.append((start, " ".join(pending)))
    return logical


def _refuse(number: int, message: str) -> ApiError:
    return ApiError(400, f"Dockerfile line {number}: {message}")


def _env_pairs(number: int, args: str) -> dict[str, str]:
    try:
        words = shlex.split(args)
    except ValueError as exc:
        raise _refuse(number, f"cannot parse ENV: {exc}") from None
    if words and "=" not in words[0]:
        # the legacy form: ENV KEY the rest of the line
        key, _, value = args.strip().partition(" ")
        return {key: value.strip()}
    pairs = {}
    for word in words:
        key, sep, value = word.partition("=")
        if not sep or not key:
            raise _refuse(number, f"cannot parse ENV {args!r}")
        pairs[key] = value
    return pairs


def _run_command(number: int, args: str) -> str:
    if args.startswith("["):
        try:
            argv = json.loads(args)
        except ValueError:
            argv = None
        if not isinstance(argv, list) or not all(isinstance(a, str) for a in argv):
            raise _refuse(number, f"cannot parse RUN {args!r}")
        return shlex.join(argv)
    if args.startswith("--"):
        raise _refuse(number, f"RUN options are not supported by the emulator: {args!r}")
    return args


def plan_build(dockerfile: str) -> BuildPlan:
    """The steps of ``dockerfile`` the emulator applies; 400 for any it cannot apply."""
    env: dict[str, str] = {}
    run: list[str] = []
    seen_from = False
    for number, line in _lines(dockerfile):
        instruction, _, args = line.partition(" ")
        instruction = instruction.upper()
        args = args.strip()
        if instruction == "FROM":
            if seen_from:
                raise _refuse(number, "multi-stage builds cannot be applied by the emulator")
            seen_from = True
        elif not seen_from:
            raise _refuse(number, f"{instruction} before FROM")
        elif instruction == "ENV":
            env.update(_env_pairs(number, args))
        elif instruction == "RUN":
            run.append(_run_command(number, args))
        elif instruction not in _NO_EFFECT:
            raise _refuse(
                number,
                f"the emulator cannot apply {instruction} (it applies FROM, ENV and RUN; "
                f"{', '.join(sorted(_NO_EFFECT))} change nothing)",
            )
    if not seen_from:
        raise ApiError(400, "Dockerfile has no FROM instruction")
    return BuildPlan(env=env, run=tuple(run))
