"""The MCP tools over a recording a fake agent laid down, through the SDK's own client."""

from __future__ import annotations

import asyncio

import pytest

pytest.importorskip("mcp")
from mcp.client import Client  # noqa: E402

from fake_agent import demo_recording, tally  # noqa: E402
from microscope_jupyter.assistant import Assistant, build_server  # noqa: E402


def test_messages_match_a_pattern_as_trace_message_does():
    """{:add, _} finds the cast and the plain send; a pattern nothing matches, no rows."""
    async def ask(*patterns):
        async with Client(build_server(Assistant(demo_recording(tally)))) as c:
            return [(await c.call_tool("messages", {"pattern": p})).content[0].text
                    for p in patterns]

    adds, nothing = asyncio.run(ask("{:add, _}", "{:nope}"))
    rows = adds.splitlines()[1:-1]
    assert [row.split(" | ")[0] for row in rows] == ["0", "6"], adds
    assert nothing == "(no rows)"
