"""Provider configuration: keyword arguments first, then the environment."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, ClassVar, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ._errors import ConfigProblem, ProviderConfigError

__all__ = ["ProviderConfig", "env_field"]


def env_field(*names: str, **kwargs: Any) -> Any:
    """A pydantic ``Field`` that falls back to the first set environment variable in ``names``."""
    extra = dict(kwargs.pop("json_schema_extra", None) or {})
    extra["env"] = list(names)
    return Field(json_schema_extra=extra, **kwargs)


class ProviderConfig(BaseModel):
    """Base class of every provider's configuration model.

    Subclasses add their fields. Values come from keyword arguments first, then from the
    environment: a field declared with :func:`env_field` reads the variables it names,
    any other field reads ``{env_prefix}{FIELD_NAME}`` when ``env_prefix`` is set.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True, defer_build=True)

    env_prefix: ClassVar[str] = ""

    default_timeout: float = Field(
        default=60.0, gt=0, description="seconds a run may take when no timeout is given"
    )
    warm_pool_size: int = Field(
        default=0, ge=0, le=64, description="ready workspaces kept per (template, resources) key"
    )

    @classmethod
    def load(cls, values: Mapping[str, Any], environ: Mapping[str, str] | None = None) -> Self:
        """Build the config from ``values``, filling gaps from ``environ`` (default ``os.environ``).

        Raises :class:`ProviderConfigError` naming each bad field, never echoing its value.
        """
        environ = os.environ if environ is None else environ
        merged = dict(values)
        for field_name in cls.model_fields:
            if field_name in merged:
                continue
            for name in cls.env_names(field_name):
                if environ.get(name):
                    merged[field_name] = environ[name]
                    break
        try:
            return cls.model_validate(merged)
        except ValidationError as exc:
            raise ProviderConfigError(*_describe(cls, exc)) from None

    @classmethod
    def env_names(cls, field_name: str) -> list[str]:
        """The environment variables ``field_name`` falls back to, in order."""
        field = cls.model_fields.get(field_name)
        if field is None:
            return []
        extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
        names = [str(name) for name in extra.get("env", []) or []]  # type: ignore[union-attr]
        if not names and cls.env_prefix:
            names = [f"{cls.env_prefix}{field_name.upper()}"]
        return names


def _describe(model: type[ProviderConfig], exc: ValidationError) -> tuple[str, list[ConfigProblem]]:
    """What is wrong, field by field: only the fields at fault, with their variables."""
    problems: list[ConfigProblem] = []
    unknown = False
    for error in exc.errors(include_input=False, include_url=False):
        where = ".".join(str(part) for part in error["loc"]) or "config"
        top = str(error["loc"][0]) if error["loc"] else ""
        names = model.env_names(top) if top else []
        if error["type"] == "missing":
            hint = f" (pass {top}=... or set {' or '.join(names)})" if names else ""
            problems.append(ConfigProblem(where, f"{where} is required{hint}"))
        elif error["type"] == "extra_forbidden":
            unknown = True
            problems.append(ConfigProblem(where, f"{where}: unknown field"))
        else:
            source = f" (from {' or '.join(names)}?)" if names else ""
            problems.append(ConfigProblem(where, f"{where}: {error['msg']}{source}"))
    message = f"invalid {model.__name__}: " + "; ".join(p.message for p in problems)
    if unknown:
        message += f" (known fields: {', '.join(sorted(model.model_fields))})"
    return message, problems
