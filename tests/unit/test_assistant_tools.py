"""The MCP tools over a recording a fake agent laid down, through the SDK's own client."""

from __future__ import annotations

import asyncio
import concurrent.futures

import pytest

pytest.importorskip("mcp")
from mcp.client import Client  # noqa: E402

import microscope_jupyter as mic  # noqa: E402
from fake_agent import demo_recording, tally  # noqa: E402
from microscope_jupyter.assistant import Assistant, build_server  # noqa: E402
from microscope_jupyter.saved import OfflineSession  # noqa: E402
from microscope_jupyter.store.event_store import EventStore  # noqa: E402


def run(coroutine):
    """asyncio.run in a thread of its own: an earlier test of the session (an
    IPython shell) may leave this thread's loop marked as running."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


def test_messages_match_a_pattern_as_trace_message_does():
    """{:add, _} finds the cast and the plain send; a pattern nothing matches, no rows."""
    async def ask(*patterns):
        async with Client(build_server(Assistant(demo_recording(tally)))) as c:
            return [(await c.call_tool("messages", {"pattern": p})).content[0].text
                    for p in patterns]

    adds, nothing = run(ask("{:add, _}", "{:nope}"))
    rows = adds.splitlines()[1:-1]
    assert [row.split(" | ")[0] for row in rows] == ["0", "6"], adds
    assert nothing == "(no rows)"


def _ask(assistant, *calls, **client):
    async def go():
        async with Client(build_server(assistant), **client) as c:
            return [(await c.call_tool(name, args)).content[0].text for name, args in calls]
    return run(go())


def _accept(approve=True, seen=None):
    from mcp import types

    async def respond(context, params):
        if seen is not None:
            seen.append(params.message)
        return types.ElicitResult(action="accept", content={"approve": approve})
    return respond


def test_the_server_says_its_version():
    from microscope_jupyter.package_data import version

    async def go():
        async with Client(build_server(Assistant(demo_recording(tally)))) as c:
            return c.server_info
    info = run(go())
    assert info.name == "beam-microscope" and info.version == version() != ""


PROPOSAL = {"reason": "who sends what", "processes": ["Demo.WorkerB"],
            "modules": [":erlang.send/2"], "duration_s": 1.5, "max_events": 1234,
            "max_rate": 567, "payload_limit": 89}


def test_an_approval_shows_everything_that_will_run():
    """Processes, each modules= function with its match spec, the flags, limits and
    duration: what the human sees in the client, and in the notebook's panel."""
    seen: list[str] = []
    assistant = Assistant(demo_recording(tally))
    answer, = _ask(assistant, ("propose_trace", PROPOSAL),
                   elicitation_callback=_accept(approve=False, seen=seen))
    assert answer == "proposal 1: declined. declined by the human"
    shown = seen[0]
    for part in ("processes: Demo.WorkerB, each supervisor with its whole subtree",
                 "calls of :erlang.send/2 in those processes: match spec "
                 "[{'_', [], [{return_trace}, {exception_trace}]}]",
                 "trace flags: set_on_spawn, monotonic_timestamp, send, receive, procs, call",
                 "erlang:monitor/2 (match spec [{[process, '_'], [], [{return_trace}]}]) and "
                 "erlang:demonitor/1",
                 "limits: at most 1,234 events, 567 events/s (more are dropped and counted), "
                 "89 bytes a payload", "duration: 1.5 s", "reason: who sends what"):
        assert part in shown, (part, shown)
    from microscope_jupyter.widgets.approvals import ApprovalPanel

    assistant.proposals[1].status = "pending"      # as if it still waited for the notebook
    panel = ApprovalPanel(assistant).children[0].children[0].value
    assert "erlang:send/2" not in panel and ":erlang.send/2" in panel
    assert "return_trace" in panel and "1,234 events" in panel and "1.5 s" in panel


def test_over_stdio_without_elicitation_the_answer_says_nobody_can_approve_and_how(tmp_path):
    assistant = Assistant(demo_recording(tally), notebook=False, save_dir=str(tmp_path))
    trace, save = _ask(assistant, ("propose_trace", PROPOSAL), ("save", {"path": "x"}))
    assert trace.startswith("proposal 1: refused. nobody can approve this trace here: this "
                            "client cannot ask its human (no MCP elicitation), and a stdio "
                            "server has no notebook to approve in."), trace
    assert "microscope mcp --node None" not in trace
    assert "--allow-trace --max-events N --max-duration S" in trace
    assert "%beam_mcp" not in trace
    assert save.startswith("proposal 2: refused. nobody can approve this save here") and \
        "--save-dir DIR --allow-save" in save
    assert assistant.recording is None


def test_save_needs_a_configured_folder_and_the_humans_approval(tmp_path):
    s = demo_recording(tally)
    off, = _ask(Assistant(s), ("save", {"path": "rec"}))
    assert off.startswith("error: saving is off: the human configured no folder for it")
    assistant = Assistant(s, save_dir=tmp_path / "saves")
    outside = [("save", {"path": p}) for p in ("../escape", str(tmp_path / "abs"), "", ".")]
    for answer in _ask(assistant, *outside):
        assert answer.startswith(f"error: save takes a new folder name inside "
                                 f"{tmp_path / 'saves'}"), answer
    waiting, = _ask(assistant, ("save", {"path": "rec", "reason": "keep it"}))
    assert waiting == ("proposal 1: pending. waiting for the human: in the notebook, %beam_mcp "
                       "approve 1 (or deny 1); check trace_status")
    assert not (tmp_path / "saves" / "rec").exists()       # nothing written yet
    assistant.decide(1, True, "notebook")
    assert assistant.proposals[1].status == "saved"
    assert len(mic.load(tmp_path / "saves" / "rec").events) == len(s.events)
    seen: list[str] = []
    again, fresh = _ask(assistant, ("save", {"path": "rec"}), ("save", {"path": "rec2"}),
                        elicitation_callback=_accept(seen=seen))
    assert again.startswith("error: 'rec' already exists in") and "never replaces" in again
    assert fresh.startswith("proposal 2: saved. saved to") and "approved by elicitation" in fresh
    assert seen == [f"The assistant asks to save:\n- save this session (its events, metadata "
                    f"and audit) to a new folder, {tmp_path / 'saves' / 'rec2'}\n- reason: "
                    "(none given)\nApprove?"]


@pytest.mark.parametrize("tool, arguments, answer", [
    ("processes", {}, "error: processes needs a live node, and this session is a saved recording"),
    ("node_info", {}, "error: node_info needs a live node, and this session is a saved recording"),
    ("messages", {"cursor": -5}, "error: cursor must be 0 or more, not -5"),
    ("messages", {"between": "Demo.WorkerB"}, "error: between takes two names or pids, 'A,B'"),
    ("events_around", {"seq": 3, "window_ms": -1}, "error: window_ms must be 0 or more, not -1"),
    ("propose_trace", {"reason": "x", "duration_s": -1},
     "proposal 1: refused. duration must be positive, got -1"),
    ("propose_trace", {"reason": "x", "processes": [""]}, "proposal 1: refused. expected a pid"),
])
def test_odd_inputs_get_one_clear_line(tool, arguments, answer):
    empty = OfflineSession(EventStore(), {}, None)
    for session in (empty, demo_recording(tally)):
        text, = _ask(Assistant(session), (tool, arguments))
        assert text.startswith(answer) and "\n" not in text, text


def test_messages_with_a_pattern_on_an_empty_recording():
    text, = _ask(Assistant(OfflineSession(EventStore(), {}, None)),
                 ("messages", {"pattern": "{:add, _}"}))
    assert text == "(no rows)"


def test_http_takes_the_bearer_scheme_in_any_case_and_says_where_the_token_is():
    import json
    import urllib.error
    import urllib.request

    from microscope_jupyter.assistant import HttpServer

    server = HttpServer(Assistant(demo_recording(tally)))

    def post(authorization=None):
        headers = {"Content-Type": "application/json",
                   "Accept": "application/json, text/event-stream"}
        if authorization:
            headers["Authorization"] = authorization
        body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {},
            "clientInfo": {"name": "t", "version": "1"}}}).encode()
        request = urllib.request.Request(server.url, body, headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode()

    try:
        for scheme in ("Bearer", "bearer", "BEARER"):
            status, _ = post(f"{scheme} {server.token}")
            assert status == 200, scheme
        for wrong in (None, "Bearer nope", f"Basic {server.token}", f"Bearer {server.token}x"):
            status, text = post(wrong)
            assert status == 401, wrong
        assert "shown when the server started" not in text
        assert text == ("a bearer token is required: send 'Authorization: Bearer <token>', the "
                        "token being s.mcp.token in the notebook that started this server")
    finally:
        server.stop()
