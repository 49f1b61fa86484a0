"""Investigate on real nodes: from a question the default trace cannot answer
to a confirmed cause, each deeper trace approved (ahead, by a person, or
through MCP), denied ones never run, and nothing left on the node.

The app is the bug corpus's ETS read-modify-write race (tests/erlang/bugs):
its cause needs call tracing of ets:lookup/2 and ets:insert/2, which the
default trace does not have. Its tellers race only when ``trigger/0`` sends
them in: the investigation fires it as each trace starts (``reproduce``), as a
person re-runs an incident."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
import time

import pytest
from mcp.client import Client

import microscope_jupyter as mic
from bugs import BY_NAME, build
from microscope_jupyter.assistant import Assistant, Ceilings, build_server
from nodes import leftovers, load_module, wait_until

BUG = BY_NAME["ets_rmw_race"]
CEILINGS = {"max_events": 300_000, "max_rate": 50_000, "duration_s": 5.0}


@contextlib.contextmanager
def incidents(node):
    """The race's tellers sent in every 200 ms from another session, meanwhile."""
    halt = threading.Event()

    def fire():
        with mic.attach(node.name, cookie=node.cookie) as other:
            while not halt.is_set():
                other.rpc(BUG.module, "trigger", [])
                halt.wait(0.2)
    firing = threading.Thread(target=fire, daemon=True)
    firing.start()
    try:
        yield
    finally:
        halt.set()
        firing.join(10)


def ask_in_thread(coroutine):
    with concurrent.futures.ThreadPoolExecutor(1) as pool:   # an event loop of its own
        return pool.submit(asyncio.run, coroutine).result()


def tellers(s, bursts: int = 5):
    """The incident, again and again for the first second and a half of a trace."""
    def fire():
        for _ in range(bursts):
            s.rpc(BUG.module, "trigger", [])
            time.sleep(0.3)            # pacing the workload, not waiting for a result
    return fire


@pytest.fixture
def racing(node_factory, request, tmp_path):
    """A fresh node running the race, recorded once with the default trace."""
    runtime = getattr(request, "param", "otp25")
    node = node_factory(runtime, prefix="inv")
    s = mic.attach(node.name, cookie=node.cookie)
    wait_until(lambda: s.eval_erlang("init:get_status().") == (mic.Atom("started"),) * 2)
    load_module(s, build(BUG, tmp_path))
    assert s.rpc(BUG.module, "start", []) == mic.Atom("ok")
    with s.trace():
        time.sleep(1.5)
    assert not s.explain(BUG.question).causes["kind"].eq("ets_race").any()
    yield node, s
    if s.attached:
        s.detach()
    node.stop()


def test_pre_approved_traces_confirm_the_race(racing, tmp_path):
    node, s = racing
    inv = s.investigate(BUG.question, approve=CEILINGS, reproduce=tellers(s))
    assert inv.status == "confirmed", inv.text()
    assert 1 <= inv.traces_run <= 3
    step = inv.path.iloc[0]
    assert step["hypothesis"] == "ets_race"
    assert step["trace"].startswith("tracing every process, calls of ets:lookup/2, ets:insert/2")
    assert step["decision"] == "approved by pre-approval" and step["events"] > 0
    assert "events/s from these processes' rate in the recording" in step["predicted"]
    assert inv.answer.causes["kind"].iloc[0] == "ets_race"
    assert "read-modify-write race" in inv.answer.text.lower()
    # the path is saved with the recording
    saved = mic.load(s.save(tmp_path / "rec"))
    steps = [a for a in saved.audit if a["tool"] == "investigate"]
    assert any(a["outcome"].startswith("traced: approved by pre-approval; confirmed")
               for a in steps), steps
    assert steps[-1]["outcome"].startswith("confirmed")
    # ...and shown in the report, offline
    page = saved.report(tmp_path / "report.html").read_text()
    assert "<h2>Investigation</h2>" in page and "ets:lookup/2" in page


def test_a_person_approves_each_trace_and_a_denied_one_never_runs(racing):
    node, s = racing
    inv = s.investigate(BUG.question, reproduce=tellers(s))
    assert inv.status == "waiting" and inv.traces_run == 0
    assert "waiting for approval" in inv.text()
    first = inv.pending.step.request
    assert "ets:lookup/2" in first.summary()
    events = len(s.store)
    inv.deny()
    # denied: nothing ran, and it is not proposed again
    assert len(s.store) == events
    offered = [st.request.summary() for st in inv.steps]
    assert offered.count(first.summary()) == 1
    assert inv.steps[0].decision == "denied by notebook"
    while inv.status == "waiting":
        inv.approve()
    assert inv.status in ("exhausted", "spent", "confirmed")
    assert "ets_race" not in {h.kind for h in inv.hypotheses if h.status == "confirmed"}
    # a person who approves it in a new investigation gets the race
    again = s.investigate(BUG.question, approve=lambda lines: True, reproduce=tellers(s))
    assert again.status == "confirmed" and again.path["decision"].iloc[0] == "approved by notebook"


def test_ceilings_refuse_what_is_above_them(racing):
    node, s = racing
    inv = s.investigate(BUG.question, approve={"max_events": 300_000, "duration_s": 1.0})
    # the probe asks for 3 s: above the ceiling, so it is refused, and nothing ran
    assert inv.traces_run == 0
    assert inv.path["decision"].iloc[0].startswith("refused: duration_s=3.0 is above the "
                                                   "ceiling of 1.0"), inv.path.to_string()


def test_detach_during_an_investigation_leaves_nothing(racing, node_factory):
    node, s = racing
    inv = s.investigate(BUG.question, approve=CEILINGS, reproduce=s.detach)
    assert not s.attached
    assert inv.status in ("exhausted", "spent", "confirmed")
    with mic.attach(node.name, cookie=node.cookie) as observer:
        wait_until(lambda: not any(leftovers(observer, []).values()))


@pytest.mark.parametrize("racing", ["otp28"], indirect=True)
def test_an_assistant_investigates_through_mcp_within_the_ceilings(racing):
    node, s = racing
    assistant = Assistant(s, ceilings=Ceilings(**CEILINGS))

    async def ask():
        async with Client(build_server(assistant)) as c:
            result = await c.call_tool("investigate", {"question": BUG.question})
            return result.content[0].text

    with incidents(node):       # the incident keeps happening while the assistant investigates
        answer = ask_in_thread(ask())
    assert answer.startswith(f"Investigation of {BUG.question!r}: confirmed"), answer
    assert "approved by pre-approval" in answer and "Read-modify-write race" in answer
    tools = [a["tool"] for a in s.audit]
    assert "investigate" in tools


def test_an_assistants_investigation_waits_for_the_notebook(racing):
    """No ceilings and no elicitation: each trace the investigation proposes
    waits as a proposal, and %beam_mcp approve ID runs it and goes on."""
    node, s = racing
    assistant = Assistant(s)

    async def ask():
        async with Client(build_server(assistant)) as c:
            result = await c.call_tool("investigate", {"question": BUG.question})
            return result.content[0].text
    answer = ask_in_thread(ask())
    assert ": waiting" in answer.splitlines()[0], answer
    waiting = assistant.pending()
    assert len(waiting) == 1 and "%beam_mcp approve" in waiting[0].message
    inv = waiting[0].investigation
    inv.reproduce = tellers(s)
    decided = assistant.decide(waiting[0].id, True, "notebook")
    assert decided.status == "started"
    assert inv.status == "confirmed", inv.text()
    assert inv.path["decision"].iloc[0] == "approved by notebook"


def test_an_assistants_client_asks_its_human_for_each_trace(racing):
    """A client that can elicit: the human is asked before the trace runs, with
    everything it will run and its predicted cost."""
    from mcp import types

    node, s = racing
    asked: list[str] = []

    async def human(context, params):
        asked.append(params.message)
        return types.ElicitResult(action="accept", content={"approve": True})

    async def ask():
        async with Client(build_server(Assistant(s)), elicitation_callback=human) as c:
            return (await c.call_tool("investigate", {"question": BUG.question})).content[0].text
    with incidents(node):
        answer = ask_in_thread(ask())
    assert len(asked) == 1, asked
    assert "ets.lookup/2" in asked[0] and "predicted: about" in asked[0], asked[0]
    assert answer.startswith(f"Investigation of {BUG.question!r}: confirmed"), answer
    assert "approved by elicitation" in answer


def test_with_nothing_recorded_it_proposes_a_default_trace_first(node_factory):
    node = node_factory("otp25", prefix="inv")
    with mic.attach(node.name, cookie=node.cookie) as s:
        inv = s.investigate("Why does it crash?", approve=lambda lines: False)
        first = inv.path.iloc[0]
        assert (first["hypothesis"], first["decision"]) == ("more", "denied by notebook")
        assert first["trace"].startswith("tracing every process for 5 s")
        assert inv.status == "exhausted" and len(s.store) == 0
    node.stop()
