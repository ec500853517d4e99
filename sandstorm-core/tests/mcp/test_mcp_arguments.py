"""Bad tool arguments (wrong types, missing fields, huge inputs) are tool errors: the
server never crashes and the session stays usable. Arguments come from the tools' own
JSON schemas, and from violations of them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mcp import Client

from sandstorm.local import LocalProvider
from sandstorm.mcp import ServerOptions, build_server, tool_declarations

from .conftest import text

pytestmark = pytest.mark.anyio

OPTIONS = ServerOptions(default_timeout=2, max_timeout=2, max_output=2000)
SCHEMAS = {tool.name: tool.input_schema for tool in tool_declarations(OPTIONS)}

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=5,
)


def valid(schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Values a (property) schema accepts."""
    if "anyOf" in schema:
        return st.one_of([valid(branch) for branch in schema["anyOf"]])
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    kind = schema.get("type")
    if kind == "string":
        return st.text(
            alphabet=st.characters(blacklist_categories=["Cs"]),
            min_size=schema.get("minLength", 0),
            max_size=min(schema.get("maxLength", 40), 40),
        )
    if kind == "integer":
        return st.integers(schema.get("minimum", -(2**31)), schema.get("maximum", 2**31))
    if kind == "number":
        return st.floats(0.01, schema.get("maximum", 5), allow_nan=False)
    return st.none()


@st.composite
def arguments(draw: st.DrawFn, schema: dict[str, Any]) -> dict[str, Any]:
    """Arguments from ``schema``, sometimes with a field dropped, mistyped or added."""
    props: dict[str, Any] = schema.get("properties", {})
    args = {
        name: draw(valid(prop))
        for name, prop in props.items()
        if name in schema.get("required", []) or draw(st.booleans())
    }
    violation = draw(st.sampled_from(["none", "drop", "mistype", "extra", "huge"]))
    if violation == "drop" and args:
        args.pop(draw(st.sampled_from(sorted(args))))
    elif violation == "mistype" and props:
        args[draw(st.sampled_from(sorted(props)))] = draw(JSON)
    elif violation == "extra":
        args[draw(st.text(min_size=1, max_size=10))] = draw(JSON)
    elif violation == "huge" and props:
        args[draw(st.sampled_from(sorted(props)))] = "x" * 2_000_001
    return args


@st.composite
def calls(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    """A tool name and its arguments."""
    name = draw(st.sampled_from(sorted(SCHEMAS)))
    return name, draw(arguments(SCHEMAS[name]))


@pytest.fixture
async def client(provider: LocalProvider) -> AsyncIterator[Client]:
    """One in-process session shared by all the examples."""
    async with Client(build_server(provider, OPTIONS), raise_exceptions=True) as connected:
        yield connected


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(call=calls())
async def test_any_arguments_give_a_result_never_a_crash(
    client: Client, call: tuple[str, dict[str, Any]]
) -> None:
    name, args = call
    result = await client.call_tool(name, args)  # raise_exceptions: a server crash raises
    assert result.content, result
    if result.is_error:
        assert text(result).strip()


async def test_huge_and_mistyped_inputs_are_named(client: Client) -> None:
    huge = await client.call_tool("run_code", {"code": "x" * 2_000_001})
    assert huge.is_error
    assert "code" in text(huge)
    assert "at most" in text(huge)
    missing = await client.call_tool("write_file", {"content": "x"})
    assert missing.is_error
    assert "path" in text(missing)
    assert "required" in text(missing).lower()
    wrong = await client.call_tool("expose_port", {"port": "80"})
    assert wrong.is_error
    assert "port" in text(wrong)
    extra = await client.call_tool("list_files", {"path": ".", "recursive": True})
    assert extra.is_error
    assert "recursive" in text(extra)
    bad64 = await client.call_tool(
        "write_file", {"path": "a", "content": "@@", "encoding": "base64"}
    )
    assert bad64.is_error
    assert "base64" in text(bad64)
    escape = await client.call_tool("read_file", {"path": "../../etc/passwd"})
    assert escape.is_error
    # and the session still works
    assert "exit_code: 0" in text(await client.call_tool("run_command", {"command": "true"}))
