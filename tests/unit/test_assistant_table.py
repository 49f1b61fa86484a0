"""Each MCP tool answers what its Session or Query method answers in a notebook.

One recording (the fake agent's), every tool called through the SDK's own client,
and beside it the method a notebook user would call with the same arguments.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import inspect

import pandas as pd
import pytest

pytest.importorskip("mcp")
from mcp.client import Client  # noqa: E402

import microscope_jupyter as mic  # noqa: E402
from fake_agent import A, B, MS, crash_after_updates, demo_recording  # noqa: E402
from microscope_jupyter.agent.options import ASSISTANT_CEILINGS  # noqa: E402
from microscope_jupyter.agent.spec import TraceSpec  # noqa: E402
from microscope_jupyter.assistant import Assistant, Ceilings, build_server  # noqa: E402
from microscope_jupyter.assistant.engine import cell  # noqa: E402
from microscope_jupyter.assistant.table import TOOLS, call_of, method_of  # noqa: E402
from microscope_jupyter.beam.terms import Atom  # noqa: E402

ROWS = {tool.name: tool for tool in TOOLS}


def with_calls(agent):
    crash_after_updates(agent)
    fact = (Atom("Elixir.Demo.Math"), Atom("fact"), 1)
    agent.event("call", A, mfa=fact, payload=[2], ts=310 * MS)
    agent.event("return", A, mfa=fact, payload=2, ts=311 * MS)


class FakeRecording:
    state = "running"

    def status(self):
        return {"state": self.state, "events": 3, "dropped": 0, "message": "", "notes": []}

    def stop(self):
        self.state = "stopped"
        return self.status()


@pytest.fixture
def s():
    """A recording, and the live answers a node would give, for the live tools."""
    session = demo_recording(with_calls)
    session.node_info = lambda: {"node": "demo@host", "otp_release": "27"}
    session.processes = lambda: pd.DataFrame({"pid": ["<0.100.0>", "<0.101.0>"],
                                              "name": ["Demo.WorkerA", "Demo.WorkerB"],
                                              "memory": [10, 20]})
    session.traced = []
    session.trace = lambda *procs, **options: session.traced.append(
        (procs, options)) or FakeRecording()
    return session


def ask(assistant, name, arguments):
    async def go():
        async with Client(build_server(assistant)) as client:
            return (await client.call_tool(name, arguments)).content[0].text
    with concurrent.futures.ThreadPoolExecutor(1) as pool:   # a loop of its own
        return pool.submit(asyncio.run, go()).result()


def table(text: str) -> list[list[str]]:
    """An answer's table: the header, then the rows (the newest-seq marker left out)."""
    return [line.split(" | ") for line in text.splitlines() if not line.startswith("[")]


def rows(frame: pd.DataFrame, tool: str) -> list[list[str]]:
    """``frame`` as the tool's row shows it: its columns, each value as ``cell`` writes it."""
    columns = [c for c in (ROWS[tool].columns or frame.columns) if c in frame.columns]
    if frame.empty:
        return [["(no rows)"]]
    return [columns] + [[cell(v) for v in row] for row in frame[columns].itertuples(index=False)]


def with_seq(messages: pd.DataFrame) -> pd.DataFrame:
    return messages.assign(seq=messages["send_seq"].fillna(messages["receive_seq"]))


# (tool, its arguments, what a notebook user gets from the method: a frame or a text)
READING = [
    ("node_info", {}, lambda s: "node: demo@host\notp_release: 27"),
    ("processes", {}, lambda s: s.processes().sort_values("memory", ascending=False)),
    ("supervision_tree", {}, lambda s: s.supervision_tree()),
    ("findings", {}, lambda s: s.findings()),
    ("explain", {"question": "Why does WorkerB crash?"},
     lambda s: s.explain("Why does WorkerB crash?").text),
    ("messages", {}, lambda s: with_seq(s.messages())),
    ("messages", {"between": "Demo.WorkerB, Demo.WorkerA"},
     lambda s: with_seq(s.query.message_flow("Demo.WorkerB", "Demo.WorkerA"))),
    ("state_timeline", {"proc": "Demo.WorkerB"},
     lambda s: s.query.state_timeline("Demo.WorkerB")),
    ("snapshot_at", {"seq": 40}, lambda s: s.time_travel().snapshot_at(40)),
    ("events_around", {"seq": 40}, lambda s: s.query.events_around(40)),
    ("events_around", {"seq": 40, "window_ms": 5}, lambda s: s.query.events_around(40, 5)),
    ("calls", {}, lambda s: s.calls()),
    ("exunit", {"proc": "Demo.WorkerB"}, lambda s: s.exunit("Demo.WorkerB").source),
]


@pytest.mark.parametrize("tool, arguments, notebook", READING,
                         ids=[f"{t}{sorted(a)}" for t, a, _ in READING])
def test_a_reading_tool_answers_as_its_method(s, tool, arguments, notebook):
    answer = ask(Assistant(s, cap=10**7), tool, arguments)
    expected = notebook(s)
    if isinstance(expected, str):
        assert answer.startswith(expected) and not answer.startswith("error"), answer
    else:
        assert table(answer) == rows(expected, tool)
        assert len(expected) > 0, "compare on a recording that has rows"


def test_between_is_message_flow_both_ways_and_events_around_is_milliseconds(s):
    flow = ask(Assistant(s, cap=10**7), "messages", {"between": "Demo.WorkerA,Demo.WorkerB"})
    assert {row[1] for row in table(flow)[1:]} == {"->"}      # direction, as message_flow says
    assert len(table(flow)) - 1 == len(s.query.message_flow("Demo.WorkerA", "Demo.WorkerB"))
    wide = ask(Assistant(s, cap=10**7), "events_around", {"seq": 40, "window_ms": 1000})
    assert len(table(wide)) - 1 == len(s.events)              # all 300 ms of it, not ±20 seqs


def test_propose_trace_starts_what_the_notebook_would(s):
    assistant = Assistant(s, ceilings=Ceilings())
    answer = ask(assistant, "propose_trace", {"reason": "look", "processes": ["Demo.WorkerB"],
                                              "modules": ["Demo.Math.fact/1"], "duration_s": 2})
    assert answer.startswith("proposal 1: started."), answer
    (procs, options), = s.traced
    notebook = TraceSpec.build(["Demo.WorkerB"], ["Demo.Math.fact/1"], duration=2,
                               max_events=ASSISTANT_CEILINGS.max_events,
                               max_rate=ASSISTANT_CEILINGS.max_rate)
    assert TraceSpec.build(procs, **options).to_agent_opts() == notebook.to_agent_opts()
    # trace_status and stop_trace are the engine's, on the trace it started
    assert ask(assistant, "trace_status", {}) == assistant.trace_status()
    assert ask(assistant, "stop_trace", {}) == f"stopped; {len(s.store)} events in the session"
    assert assistant.recording.state == "stopped"
    assert ask(assistant, "stop_trace", {}) == assistant.stop_trace()


def test_a_limit_left_out_is_the_notebooks_default_within_the_ceilings(s):
    assistant = Assistant(s, ceilings=Ceilings(max_rate=1_000, duration_s=3))
    ask(assistant, "propose_trace", {"reason": "look"})
    (_, options), = s.traced
    assert options == {"modules": [], "max_events": ASSISTANT_CEILINGS.max_events,
                       "max_rate": 1_000, "payload_limit": 4096, "duration": 3.0}
    refused = ask(assistant, "propose_trace", {"reason": "look", "max_rate": 5_000})
    assert refused.startswith("proposal 2: refused. max_rate=5000 is above the ceiling of 1000 "
                              "the human set; propose max_rate<=1000")


def test_save_writes_what_the_notebook_would(s, tmp_path):
    answer = ask(Assistant(s, save_dir=tmp_path, allow_save=True), "save", {"path": "rec"})
    assert answer.startswith("proposal 1: saved."), answer
    assert mic.load(tmp_path / "rec").events["seq"].tolist() == s.events["seq"].tolist()


def test_every_tool_is_a_row_and_every_row_is_compared():
    async def names():
        from fake_agent import tally

        async with Client(build_server(Assistant(demo_recording(tally)))) as client:
            return {t.name for t in (await client.list_tools()).tools}
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        served = pool.submit(asyncio.run, names()).result()
    assert served == set(ROWS)
    compared = {t for t, _, _ in READING} | {"propose_trace", "trace_status", "stop_trace",
                                             "save", "investigate"}
    assert compared == set(ROWS)
    assert {t.name for t in TOOLS if t.approval} == {"propose_trace", "save", "investigate"}


def test_each_row_names_a_real_method_and_its_parameters(s):
    """Every argument a reading row passes is a parameter of its method (the
    approval rows go through the engine, tested above with the notebook's call)."""
    assistant = Assistant(s)
    for tool in TOOLS:
        if tool.approval:
            assert callable(getattr(mic.Session, tool.method.removeprefix("s."))), tool.name
            continue
        for method, positional, keywords in _calls(tool):
            parameters = inspect.signature(method_of(assistant, method)).parameters
            assert set(keywords) <= set(parameters), (tool.name, method, keywords)
            assert len(positional) <= len(parameters), (tool.name, method)


def _calls(tool):
    given = {a.name: "x" for a in tool.arguments if a.keep is None}
    yield call_of(tool, {**given, **{a.name: "" for a in tool.arguments if a.picks}})
    for argument in tool.arguments:
        if argument.picks:
            yield call_of(tool, {**given, argument.name: "A,B"})


def test_a_tools_default_is_its_methods(s):
    schema = {}

    async def go():
        async with Client(build_server(Assistant(s))) as client:
            for t in (await client.list_tools()).tools:
                schema[t.name] = t.input_schema["properties"]
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, go()).result()
    window = inspect.signature(s.query.events_around).parameters["window_ms"].default
    assert schema["events_around"]["window_ms"]["default"] == window
    mode = inspect.signature(s.exunit).parameters["mode"].default
    assert schema["exunit"]["mode"]["default"] == mode
