"""An agent's code-execution tool: one workspace per conversation, 20 conversations at once.

Each conversation uploads a CSV, has code analyse it (output streamed as it is printed),
downloads the result, and survives a runaway tool call stopped by its timeout. The same
file runs on every provider; choose it with the environment::

    SANDSTORM_PROVIDER=local python examples/agent_tool.py
    SANDSTORM_PROVIDER=daytona DAYTONA_API_KEY=... python examples/agent_tool.py

It exits 0 when every conversation got the right answer and nothing was left behind.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import sys
import uuid

import sandstorm

CONVERSATIONS = int(os.environ.get("AGENT_TOOL_CONVERSATIONS", "20"))
RUN = uuid.uuid4().hex[:8]
LABELS = {"app": "agent-tool", "run": RUN}

ANALYSE = """
import csv, json, os
totals = {}
with open("data/sales.csv", newline="") as f:
    for row in csv.DictReader(f):
        totals[row["region"]] = totals.get(row["region"], 0) + int(row["amount"])
        print("read", row["region"], row["amount"])
os.makedirs("out", exist_ok=True)
with open("out/summary.json", "w") as f:
    json.dump({"totals": totals, "rows": sum(1 for _ in open("data/sales.csv")) - 1}, f)
print("done", len(totals), "regions")
"""


def make_sales(seed: int) -> tuple[str, dict[str, int]]:
    """A CSV of sales and the totals per region it should give."""
    rng = random.Random(seed)
    lines = ["region,amount"]
    totals: dict[str, int] = {}
    for _ in range(50):
        region = rng.choice(["north", "south", "east", "west"])
        amount = rng.randint(1, 1000)
        lines.append(f"{region},{amount}")
        totals[region] = totals.get(region, 0) + amount
    return "\n".join(lines) + "\n", totals


def check(ok: bool, problem: str) -> None:
    """Fail the conversation with ``problem`` unless ``ok``."""
    if not ok:
        raise RuntimeError(problem)


async def conversation(provider: sandstorm.AsyncProvider, number: int) -> str:
    """One conversation's tool calls; returns a line for the report."""
    workspace = await provider.get_or_create_workspace(name=f"agent-{RUN}-{number}", labels=LABELS)
    box = await provider.attach(workspace)
    try:
        sales, expected = make_sales(number)
        await box.write_file("data/sales.csv", sales)

        printed: list[str] = []
        stream = box.stream(ANALYSE, timeout=120)
        async for chunk in stream:
            if chunk.stream == "stdout":
                printed.append(chunk.text)
        result = stream.result
        check(result is not None and result.exit_code == 0, f"analysis failed: {result}")
        check("".join(printed).endswith(f"done {len(expected)} regions\n"), f"saw {printed}")

        summary = json.loads(await box.read_file("out/summary.json"))
        check(summary == {"totals": expected, "rows": 50}, f"wrong summary {summary}")

        try:  # a runaway tool call: stopped, reported, and the workspace lives on
            await box.run("while True:\n    pass", timeout=1)
            check(False, "an endless loop was not stopped")
        except sandstorm.ExecutionTimeout:
            pass
        again = await box.run("import json; print(json.load(open('out/summary.json'))['rows'])")
        check(again.stdout == "50\n", f"the workspace lost its files: {again}")
        return f"conversation {number}: {sum(expected.values())} total over {len(expected)} regions"
    finally:
        await box.delete()  # the conversation is over


async def main() -> int:
    provider = sandstorm.get_async_provider()
    async with provider:
        reports = await asyncio.gather(
            *(conversation(provider, n) for n in range(CONVERSATIONS)), return_exceptions=True
        )
        failures = [r for r in reports if isinstance(r, BaseException)]
        for report in reports:
            print(report if isinstance(report, str) else f"FAILED: {report!r}")
        left = await provider.list_workspaces(labels=LABELS)
    if left:
        print(f"left behind: {[ws.id for ws in left]}", file=sys.stderr)
    print(f"{CONVERSATIONS - len(failures)}/{CONVERSATIONS} conversations on {provider.name}")
    return 1 if failures or left else 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
