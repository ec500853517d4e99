"""Validate recorded emulator responses against the upstream OpenAPI documents.

Main API: ``specs/libs/api-client-go/api/openapi.yaml`` (OpenAPI 3.0, paths without the
``/api`` prefix). Toolbox: ``specs/apps/daemon/pkg/toolbox/docs/swagger.json`` (Swagger
2.0, paths relative to ``/toolbox/{sandboxId}``). ``nullable`` is turned into JSON
Schema. Where SDK 0.226.1 and the v0.190 documents differ, the drift documented in
PROTOCOL.md §13 is applied (``DRIFT`` below) and nothing else.
"""

from __future__ import annotations

import copy
import json
import os
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from sandstorm_daytona.emulator import Exchange


def _find_specs() -> Path:
    """``$SANDSTORM_DAYTONA_SPECS``, else ``shared/daytona/specs`` beside the repository."""
    if os.environ.get("SANDSTORM_DAYTONA_SPECS"):
        return Path(os.environ["SANDSTORM_DAYTONA_SPECS"])
    repo = Path(__file__).resolve().parents[3]
    for candidate in (repo.parent / "shared", repo / "shared", Path("/work/shared")):
        if (candidate / "daytona" / "specs").is_dir():
            return candidate / "daytona" / "specs"
    return repo.parent / "shared" / "daytona" / "specs"


SPECS = _find_specs()
MAIN_SPEC = SPECS / "libs/api-client-go/api/openapi.yaml"
TOOLBOX_SPEC = SPECS / "apps/daemon/pkg/toolbox/docs/swagger.json"

# PROTOCOL.md §13 and §6.6: toolbox paths that exist only in 0.226.1, with their shapes
# as the 0.226.1 generated client reads them.
DRIFT_TOOLBOX: dict[tuple[str, str], dict[str, Any]] = {
    ("GET", "/system/metrics"): {
        "type": "object",
        "properties": {
            k: {"type": "integer"}
            for k in (
                "cpuCount",
                "memTotal",
                "memUsed",
                "diskTotal",
                "diskUsed",
                "diskFree",
                "timestampUnix",
            )
        }
        | {"cpuUsedPct": {"type": "number"}, "timestamp": {"type": "string"}},
    },
    ("POST", "/files/upload-v2"): {
        "type": "object",
        "required": ["name", "path", "type"],
        "properties": {
            "name": {"type": "string"},
            "path": {"type": "string"},
            "type": {"type": "string"},
        },
    },
}


@dataclass
class Checked:
    """What one validation pass saw."""

    validated: set[tuple[str, str, int]]
    unspecified: set[tuple[str, str, int]]


def _nullable(node: Any) -> Any:
    """OpenAPI 3.0 ``nullable: true`` as JSON Schema."""
    if isinstance(node, dict):
        node = {k: _nullable(v) for k, v in node.items()}
        if node.pop("nullable", False):
            return {"anyOf": [node, {"type": "null"}]}
        return node
    if isinstance(node, list):
        return [_nullable(v) for v in node]
    return node


@cache
def _main() -> dict[str, Any]:
    spec = yaml.safe_load(MAIN_SPEC.read_text())
    spec["components"] = _nullable(spec["components"])
    return spec


@cache
def _toolbox() -> dict[str, Any]:
    spec: dict[str, Any] = json.loads(TOOLBOX_SPEC.read_text())
    return spec


def _template(paths: dict[str, Any], method: str, path: str) -> str | None:
    best = None
    for template, operations in paths.items():
        if method.lower() not in operations:
            continue
        pattern = (
            "^"
            + re.sub(
                r"\{[^/]+\}", "[^/]+", re.escape(template).replace(r"\{", "{").replace(r"\}", "}")
            )
            + "$"
        )
        if re.match(pattern, path):
            # prefer literal segments over parameters (/sandbox/paginated vs /sandbox/{id})
            score = template.count("{")
            if best is None or score < best[0]:
                best = (score, template)
    return best[1] if best else None


def _schema_for(exchange: Exchange, api_prefix: str) -> tuple[str, dict[str, Any] | None]:
    """(operation label, schema or None when the documents specify none)."""
    method = exchange.method
    if exchange.path.startswith("/toolbox/"):
        relative = "/" + exchange.path.split("/", 3)[3]
        label = f"{method} toolbox{relative}"
        spec = _toolbox()
        template = _template(spec["paths"], method, relative)
        if template is None:
            drift = DRIFT_TOOLBOX.get((method, relative))
            return label, drift
        responses = spec["paths"][template][method.lower()]["responses"]
        response = responses.get(str(exchange.status))
        if response is None or "schema" not in response:
            return f"{method} toolbox{template}", None
        schema = {**response["schema"], "definitions": spec["definitions"]}
        return f"{method} toolbox{template}", schema
    relative = exchange.path[len(api_prefix) :]
    spec = _main()
    template = _template(spec["paths"], method, relative)
    if template is None:
        return f"{method} {relative}", None
    label = f"{method} {template}"
    responses = spec["paths"][template][method.lower()]["responses"]
    response = responses.get(str(exchange.status))
    content = (response or {}).get("content", {}).get("application/json")
    if content is None:
        return label, None
    schema = _nullable(copy.deepcopy(content["schema"]))
    return label, {**schema, "components": spec["components"]}


def validate(exchanges: list[Exchange], api_prefix: str = "/api") -> Checked:
    """Validate every successful JSON response; raise on the first mismatch."""
    checked = Checked(set(), set())
    for exchange in exchanges:
        if exchange.status >= 400 or "json" not in exchange.content_type:
            continue
        label, schema = _schema_for(exchange, api_prefix)
        key = (label.split(" ", 1)[0], label.split(" ", 1)[1], exchange.status)
        if schema is None:
            checked.unspecified.add(key)
            continue
        validator = jsonschema.Draft202012Validator(
            schema, format_checker=jsonschema.FormatChecker()
        )
        errors = sorted(validator.iter_errors(exchange.json()), key=lambda e: list(e.path))
        if errors:
            details = "; ".join(f"{list(e.path)}: {e.message}" for e in errors[:5])
            raise AssertionError(f"{label} -> {exchange.status} does not match the spec: {details}")
        checked.validated.add(key)
    return checked


def validate_error_envelopes(exchanges: list[Exchange], api_prefix: str = "/api") -> int:
    """Every 4xx/5xx JSON body has the main (NestJS) or daemon envelope; returns the count."""
    main_keys = {"path", "timestamp", "statusCode", "error", "message"}
    daemon_keys = {"statusCode", "message", "code", "timestamp", "path", "method", "source"}
    count = 0
    for exchange in exchanges:
        if exchange.status < 400 or "json" not in exchange.content_type:
            continue
        body = exchange.json()
        if (
            isinstance(body, dict)
            and "errors" in body
            and exchange.path.endswith("/files/bulk-upload")
        ):
            continue
        keys = set(body)
        assert keys in (main_keys, daemon_keys), (exchange.path, body)
        assert body["statusCode"] == exchange.status
        if keys == daemon_keys:
            assert body["source"] == "DAYTONA_DAEMON"
            assert exchange.path.startswith("/toolbox/")
        count += 1
    return count
