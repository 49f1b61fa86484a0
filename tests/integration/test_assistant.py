"""MCP for assistants, through the SDK's own client: in memory against a real
node, over stdio with `microscope mcp` as a subprocess, and over HTTP with a
token. Approvals (elicitation, notebook, pre-approval, ceilings), caps and
paging, the audit, and no secret in any answer, record or saved file."""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import sys
from pathlib import Path

from mcp import types
from mcp.client import Client

import microscope_jupyter as mic
from microscope_jupyter.assistant import Assistant, Ceilings, build_server
from nodes import wait_until

READ_ONLY = {"node_info", "processes", "supervision_tree", "trace_status", "findings", "explain",
             "messages", "state_timeline", "snapshot_at", "events_around", "calls", "exunit"}


def run(coroutine):
    """Run the client in a thread of its own: the browser tests' sync driver may hold
    this thread's event loop."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


def text(result) -> str:
    return result.content[0].text


def answer(action, approve=True):
    """An elicitation callback: the human's answer, given by the test."""
    async def respond(context, params):
        if action == "accept":
            return types.ElicitResult(action="accept", content={"approve": approve})
        return types.ElicitResult(action=action)
    return respond


def test_every_tool_answers_about_a_real_node(demo):
    assistant = Assistant(demo)

    async def session():
        async with Client(build_server(assistant), elicitation_callback=answer("accept")) as c:
            tools = {t.name: t for t in (await c.list_tools()).tools}
            assert set(tools) == READ_ONLY | {"propose_trace", "stop_trace", "save", "investigate"}
            for name in READ_ONLY:
                assert tools[name].annotations.read_only_hint is True, name
            assert "reason" in tools["propose_trace"].input_schema["required"]
            assert "answer" not in tools["propose_trace"].input_schema["properties"]
            out = {"node_info": text(await c.call_tool("node_info", {}))}
            out["processes"] = text(await c.call_tool("processes", {"filter": "Demo.Worker"}))
            out["tree"] = text(await c.call_tool("supervision_tree", {}))
            out["propose"] = text(await c.call_tool("propose_trace", {
                "reason": "WorkerB misses updates", "processes": ["Demo.Supervisor"],
                "duration_s": 10.0}))
            # Once the trace runs: the 10th update crashes WorkerB 200 ms on, and
            # a loaded host must not have it crash before the trace began.
            demo.demo.start_updates(20)
            # what the findings below must hold: the crash, and an update lost after it
            wait_until(lambda: {"unhandled_message", "lost_message"}
                       <= set(demo.findings()["kind"]), timeout=30)
            out["stop"] = text(await c.call_tool("stop_trace", {}))
            out["status"] = text(await c.call_tool("trace_status", {}))
            out["findings"] = text(await c.call_tool("findings", {}))
            newest = int(out["findings"].rsplit("newest seq ", 1)[1].split(":")[0])
            out["findings_since"] = text(await c.call_tool("findings", {"since": newest}))
            out["explain"] = text(await c.call_tool("explain", {"question": "Why does WorkerB "
                                                                "miss updates?"}))
            out["messages"] = text(await c.call_tool("messages", {"pattern": "{:update, _}"}))
            out["timeline"] = text(await c.call_tool("state_timeline", {"proc": "Demo.WorkerB"}))
            out["snapshot"] = text(await c.call_tool("snapshot_at", {"seq": newest}))
            out["around"] = text(await c.call_tool("events_around", {"seq": newest, "window_ms": 3}))
            out["calls"] = text(await c.call_tool("calls", {}))
            out["exunit"] = text(await c.call_tool("exunit", {"proc": "Demo.WorkerB"}))
            out["bad"] = text(await c.call_tool("state_timeline", {"proc": "No.Such"}))
            return out

    out = run(session())
    demo.demo.stop_updates()
    assert "otp_release: " in out["node_info"] and "elixir_version" in out["node_info"]
    assert "Demo.WorkerA" in out["processes"] and "Demo.Stats" not in out["processes"]
    assert "Demo.Supervisor" in out["tree"]
    assert out["propose"].startswith("proposal 1: started.") and "approved by elicitation" in out["propose"]
    assert "stopped;" in out["stop"] or "no trace" in out["stop"]
    assert "proposal 1: started by elicitation" in out["status"]
    assert "unhandled_message" in out["findings"] and "lost_message" in out["findings"]
    assert out["findings_since"] == "(no rows)"      # nothing newer than the newest
    assert "stale_pid" in out["explain"] and ".worker_b" in out["explain"]
    assert "{:update, " in out["messages"] and "| lost" in out["messages"]
    assert "handle_info" in out["timeline"] and "{:update, " in out["timeline"]
    assert "Demo.WorkerB" in out["snapshot"] and "seq | ts | kind" in out["around"]
    assert out["calls"] == "(no rows)"             # no module was call-traced
    assert "defmodule Demo.WorkerB.ReproduceTest" in out["exunit"]
    assert out["bad"].startswith("error: no recorded process matches 'No.Such'")
    tools = [entry["tool"] for entry in demo.audit]
    assert tools.count("propose_trace") == 1 and "explain" in tools and "exunit" in tools


def test_proposals_declined_approved_in_the_notebook_and_within_ceilings(demo, ip):
    from microscope_jupyter import magics

    magics._state["session"] = demo        # as %beam_attach would have it
    ip.run_line_magic("beam_mcp", "start")
    assistant = demo.mcp.assistant
    server = build_server(assistant)
    proposal = {"reason": "look at WorkerB", "processes": ["Demo.WorkerB"], "duration_s": 1.0}

    async def ask(arguments=proposal, **client):
        async with Client(server, **client) as c:
            return text(await c.call_tool("propose_trace", arguments))

    try:
        declined = run(ask(elicitation_callback=answer("decline")))
        assert declined.startswith("proposal 1: declined.") and "decline" in declined
        said_no = run(ask(elicitation_callback=answer("accept", approve=False)))
        assert said_no.startswith("proposal 2: declined.")
        # a client that cannot ask its human: the proposal waits for the notebook
        waiting = run(ask())
        assert waiting.startswith("proposal 3: pending.") and "%beam_mcp approve 3" in waiting
        assert len(demo.store) == 0 and assistant.recording is None   # nothing started
        ip.run_line_magic("beam_mcp", "approve 3")
        assert assistant.proposals[3].status == "started"
        assert assistant.proposals[3].decided_by == "notebook"
        wait_until(lambda: assistant.recording.state != "running", timeout=10)
        assert len(demo.store) > 0       # what the assistant recorded is the notebook's too
        # pre-approved within ceilings, and refused above them
        assistant.ceilings = Ceilings(duration_s=2.0)
        within = run(ask())
        assert within.startswith("proposal 4: started.") and "approved by pre-approval" in within
        wait_until(lambda: assistant.recording.state != "running", timeout=10)
        too_long = run(ask({**proposal, "duration_s": 60.0}))
        assert too_long.startswith("proposal 5: refused.")
        assert "duration_s=60.0 is above the ceiling of 2.0 the human set" in too_long
    finally:
        ip.run_line_magic("beam_mcp", "stop")
        magics._state["session"] = None
    decisions = [e["outcome"].split(".")[0] for e in demo.audit
                 if e["tool"] in ("decision", "propose_trace")]
    assert decisions == ["proposal 1: declined", "proposal 2: declined", "proposal 3: pending",
                         "started", "proposal 4: started", "proposal 5: refused"]


def test_answers_are_capped_and_paged_on_100k_events(tmp_path):
    from fake_agent import A, B, FakeAgent
    from microscope_jupyter.saved import OfflineSession
    from microscope_jupyter.store.event_store import EventStore

    store = EventStore()
    agent = FakeAgent(store)
    for n in range(50_000):
        agent.event("send", A, B, payload=(mic.Atom("tick"), n))
        agent.event("receive", B, payload=(mic.Atom("tick"), n))
    agent.flush()
    assistant = Assistant(OfflineSession(store, {}, None), cap=4_000)
    server = build_server(assistant)

    async def pages():
        async with Client(server) as c:
            first = text(await c.call_tool("messages", {}))
            cursor = int(first.rsplit("cursor=", 1)[1].rstrip("]"))
            second = text(await c.call_tool("messages", {"cursor": cursor}))
            newest = text(await c.call_tool("messages", {"since": 99_990}))
            return first, second, newest

    first, second, newest = run(pages())
    assert len(first) <= 4_000 + 120 and "[cut at 4000 characters:" in first
    body = first.split("\n[cut at")[0].splitlines()
    assert body[0].startswith("seq | send_seq") and second.splitlines()[0].split(" | ")[0] == \
        str(int(body[-1].split(" | ")[0]) + 2)          # the next page starts at the next message
    # since=99990: the four messages sent after it (seqs 99992-99998), and the marker
    assert "[4 rows; newest seq 99998: pass since=99998" in newest
    assert "{:tick, 49996}" in newest and "{:tick, 49995}" not in newest


def test_stdio_console_command_attaches_serves_and_cleans_up(demo_node, tmp_path):
    from mcp.client.stdio import StdioServerParameters

    cookie_file = tmp_path / "cookie"
    cookie_file.write_text(demo_node.cookie)
    command = shutil.which("microscope", path=str(Path(sys.executable).parent))
    params = StdioServerParameters(command=command, args=[
        "mcp", "--node", demo_node.name, "--cookie-file", str(cookie_file), "--allow-trace",
        "--max-duration", "2"])

    async def session():
        async with Client(params) as c:
            info = text(await c.call_tool("node_info", {}))
            started = text(await c.call_tool("propose_trace", {
                "reason": "a look", "processes": ["Demo.WorkerB"], "duration_s": 1.0}))
            return info, started

    info, started = run(session())
    assert demo_node.name in info and started.startswith("proposal 1: started.")
    s = mic.attach(demo_node.name, cookie=demo_node.cookie)
    # The client went away: the server detached, and the agent with it, unless
    # another session's trace on this node still runs agent code (this module's
    # demo session may be tracing): then it stays for that one (in_use/0).
    gone = ("case code:is_loaded(microscope_agent) of false -> true; "
            "_ -> microscope_agent:in_use() end.")
    try:
        wait_until(lambda: s.eval_erlang(gone) is True, timeout=15)
    finally:
        s.detach()
    assert demo_node.cookie not in info + started


def test_http_needs_the_token_binds_loopback_and_stops_clean(demo, demo_node, capsys, tmp_path):
    import httpx2
    from mcp.client.streamable_http import streamable_http_client

    handle = demo.serve_mcp()
    printed = capsys.readouterr().out        # what a notebook cell would keep
    token = handle.token
    assert handle.url in printed and token not in printed and token not in repr(handle)
    assert handle.url.startswith("http://127.0.0.1:")
    refused = httpx2.post(handle.url, json={"jsonrpc": "2.0", "id": 1, "method": "ping"})
    assert refused.status_code == 401
    with socket.socket() as probe:   # not on any other address
        outside = socket.gethostbyname(socket.gethostname())
        assert outside == "127.0.0.1" or probe.connect_ex((outside, handle.port)) != 0

    async def session():
        headers = {"Authorization": f"Bearer {token}"}
        async with httpx2.AsyncClient(headers=headers) as http:
            async with Client(streamable_http_client(handle.url, http_client=http)) as c:
                return text(await c.call_tool("node_info", {}))

    assert demo.node in run(session())
    saved = demo.save(tmp_path / "saved")
    handle.stop()
    assert not handle.running
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", handle.port)) != 0
    # no secret anywhere: answers, the audit, the saved files
    everything = json.dumps(demo.audit) + "".join(
        p.read_text(errors="replace") for p in Path(saved).iterdir() if p.suffix == ".json")
    assert token not in everything and demo_node.cookie not in everything
