"""Widget classes on a hand-built recording: data sent to the front end, static fallbacks."""

from __future__ import annotations

import pytest

from fake_agent import A, B, B2, FakeAgent
from microscope_jupyter.saved import OfflineSession
from microscope_jupyter.beam.terms import Atom, Reference
from microscope_jupyter.store.event_store import EventStore
from microscope_jupyter.widgets import (ProcessGraph, SequenceDiagram, SupervisionTree, Timeline,
                                        TimeTravel)

NAME = Atom("Elixir.Demo.WorkerB")
GS = Atom("gen_server")


@pytest.fixture
def recorded():
    store = EventStore()
    agent = FakeAgent(store, names=[(B, NAME), (A, Atom("Elixir.Demo.WorkerA"))],
                      relations=[(B, Atom("link"), A)])
    call = (Atom("$gen_call"), (A, Reference(Atom("demo@host"), 1, (1, 2, 3))), Atom("get"))
    agent.event("send", A, B, payload=call)
    agent.event("receive", B, payload=call)
    agent.event("state", B, payload=(call, {Atom("n"): 0}, {Atom("n"): 0}, (Atom("reply"), 0), GS),
                aux=800)
    agent.event("send", A, B, payload=(Atom("update"), 1))
    agent.event("receive", B, payload=(Atom("update"), 1))
    agent.event("state", B, payload=((Atom("update"), 1), {Atom("n"): 0}, {Atom("n"): 1},
                                     Atom("noreply"), GS), aux=500)
    agent.event("exit", B, payload=Atom("boom"))
    agent.event("spawn", A, B2, mfa=(Atom("Elixir.Demo.WorkerB"), Atom("init"), 1))
    agent.event("send_to_dead", A, B, payload=(Atom("update"), 2))
    agent.flush()
    return OfflineSession(store, {"node": "demo@host"}, None)


def test_sequence_diagram_data_kinds_labels_and_selection(recorded):
    seq = SequenceDiagram(recorded)
    assert [lane["label"] for lane in seq.lanes] == ["Demo.WorkerA", "Demo.WorkerB"]
    assert seq.msgs["kind"] == ["call", "info", "info"]
    assert seq.msgs["label"][0] == "call :get"
    assert seq.msgs["status"] == ["delivered", "delivered", "lost"]
    assert seq.crashes == [{"lane": 1, "row": 1, "t_us": 6.0, "text": ":boom", "abnormal": True}]
    # time mode: µs from the first send; each arrow ends where its callback began
    # (the fake agent stamps events 1 µs apart; callbacks ran 0.8 and 0.5 µs)
    assert seq.msgs["send_us"] == [0.0, 3.0, 8.0]
    assert seq.msgs["end_us"] == [1.2, 4.5, None]          # the last was sent to a dead pid
    assert seq.activations == [[1, 1.2, 0.8, "handle_call"], [1, 4.5, 0.5, "handle_info"]]
    assert seq.mode == "compact" and SequenceDiagram(recorded, mode="time").mode == "time"
    seq.selected = seq.msgs["seq"][1]
    assert seq.selected_message["text"] == "{:update, 1}"
    assert seq.filter_pattern("{:update, _}") == 2 and seq.row_filter == [1, 2]
    assert seq.filter_pattern(":get") == 1 and seq.row_filter == [0]   # what GenServer.call sent
    assert seq.filter_pattern(None) == 3 and seq.row_filter is None
    assert repr(seq) == "<SequenceDiagram: 3 messages, 2 processes>"


def test_static_fallbacks_for_exported_html(recorded):
    for widget, marker in [(SequenceDiagram(recorded), "<table"), (Timeline(recorded), "<table"),
                           (SupervisionTree(recorded), "<ul"), (TimeTravel(recorded, 4), "<table")]:
        data, _ = widget._repr_mimebundle_()
        assert "application/vnd.jupyter.widget-view+json" in data
        assert marker in data["text/html"]
        # an untrusted notebook's sanitiser strips SVG and data: URLs, leaving garble
        assert "<svg" not in data["text/html"] and "data:" not in data["text/html"]
        assert "0x" not in data["text/plain"]          # stable for nbval: no memory address


def test_time_travel_widget_steps_and_highlights(recorded):
    tt = TimeTravel(recorded, cursor=4)
    worker_b = next(r for r in tt.snapshot if r["name"] == "Demo.WorkerB")
    assert worker_b["mailbox"] == ["{:update, 1}"] and worker_b["changed"]
    assert worker_b["relations"] == "links Demo.WorkerA"   # peers by name
    assert "links &amp; monitors" in tt.static_html() and "links Demo.WorkerA" in tt.static_html()
    tt.cursor = 5
    worker_b = next(r for r in tt.snapshot if r["pid"] == str(B))
    assert worker_b["diff_text"] == ".n: 0 -> 1" and worker_b["state_text"] == "%{n: 1}"
    tt.cursor = 6                                       # WorkerB exits: the link is gone
    worker_a = next(r for r in tt.snapshot if r["pid"] == str(A))
    assert worker_a["relations"] == "" and worker_a["changed"]
    tt.proc = "Demo.WorkerA"
    tt.step(+1)
    assert tt.cursor == 7                               # WorkerA's next event: the spawn
    tt._on_custom(tt, {"event": "step", "delta": -1}, [])
    assert tt.cursor == 3
    seq = SequenceDiagram(recorded)
    tt.link(seq)
    seq.cursor = 1
    assert tt.cursor == 1 and "receive" in tt.event_text


def test_time_travel_marks_a_mailbox_count_the_node_did_not_give():
    store = EventStore()
    agent = FakeAgent(store, names=[(B, Atom("Elixir.Demo.WorkerB"))])
    agent.event("state", B, payload=(Atom("tick"), 0, 1, Atom("noreply"), Atom("gen_server")))
    agent.event("mailbox", B, aux=3)                                    # the node: 3
    agent.event("receive", B, payload=(Atom("update"), 1))              # then one more seen
    agent.flush()
    tt = TimeTravel(OfflineSession(store, {}, None), cursor=1)
    row = next(r for r in tt.snapshot if r["pid"] == str(B))
    assert (row["mailbox_len"], row["mailbox_basis"]) == (3, "node")
    assert ">3</span>" in tt.static_html() and "≈" not in tt.static_html()
    tt.cursor = 2
    row = next(r for r in tt.snapshot if r["pid"] == str(B))
    assert row["mailbox_len"] == 4 and row["mailbox_basis"].startswith("estimate: the node's 3")
    assert ">≈4</span>" in tt.static_html()


def test_time_travel_keeps_a_dead_name_and_says_what_is_wrong(recorded):
    tt = TimeTravel(recorded, cursor=6)                 # WorkerB has just exited :boom
    worker_b = next(r for r in tt.snapshot if r["pid"] == str(B))
    assert not worker_b["alive"]
    assert worker_b["name"] == "Demo.WorkerB"           # not just "<0.101.0>"
    assert worker_b["exit_text"] == "exited: :boom"
    assert "nan" not in tt.event_text and tt.event_text.split()[2] == "exit"
    tt.proc = "Demo.WorkerZ"                            # a typo: said at once, not ignored
    assert "no recorded process matches 'Demo.WorkerZ'" in tt.message
    tt.step(+1)                                         # steps through everything meanwhile
    assert tt.cursor == 7 and "Demo.WorkerZ" in tt.message
    tt.proc = "Demo.WorkerA"
    assert tt.message == ""


def test_timeline_tracks_from_a_recording(recorded):
    tl = Timeline(recorded)
    lanes = {lane["label"]: lane for lane in tl.lanes}
    worker_b = lanes["Demo.WorkerB"]
    assert worker_b["exited"] and worker_b["abnormal"] and worker_b["reason"] == ":boom"
    assert worker_b["end"] == 0.006                       # the exit, 6 µs in, in ms
    born = next(lane for lane in tl.lanes if lane["id"] == str(B2))
    assert born["born"] and born["start"] == 0.007        # its spawn, not its first event
    assert tl.callbacks == ["handle_call", "handle_info"]
    assert [h[1:] for h in tl.handlers] == [[0.0012, 0.0008, 0], [0.0045, 0.0005, 1]]
    tl._on_custom(tl, {"event": "seek_ms", "ms": 0.0035}, [])
    assert tl.cursor == 3 and tl.cursor_ms == 0.003       # the last event at or before it
    tt = TimeTravel(recorded)
    tl.link(tt)
    tt.cursor = 6
    assert tl.cursor == 6 and tl.cursor_ms == 0.006


def test_process_graph_flows_flights_and_a_focused_chain(recorded):
    graph = ProcessGraph(recorded)
    labels = [n["label"] for n in graph.nodes]
    assert labels == ["Demo.WorkerA", "Demo.WorkerB"]
    assert graph.nodes[1]["crashed"] and not graph.nodes[0]["crashed"]    # :boom
    edge = graph.edges[0]
    assert (edge["from"], edge["to"], edge["count"]) == (0, 1, 3)         # the lost one included
    assert graph.flights["send_ms"] == [0.0, 0.003, 0.008]
    assert graph.seq_times[0] == [0.0, 0] and len(graph.seq_times) == len(recorded.store)
    chain = graph.focus_on(3)                      # the {:update, 1} send
    assert chain["text"].tolist()[-1] == "{:update, 1}"
    assert graph.path[-1]["to"] == 1 and graph.path[-1]["send_seq"] == 3
    assert "<table" in graph.static_html() and "Causal chain" in graph.static_html()
    tt = TimeTravel(recorded)
    graph.link(tt)
    graph.cursor = 5                                # playback moves linked widgets
    assert tt.cursor == 5


def test_tree_from_a_recording(recorded):
    tree = SupervisionTree(recorded)
    by_pid = {n["pid"]: n for n in tree.nodes}
    assert by_pid[str(B2)]["parent"] == str(A)
    assert by_pid[str(B)]["status"] == "exited"
    assert any(f["text"].startswith("Demo.WorkerB") and f["severity"] == "error"
               for f in by_pid[str(B)]["findings"])           # its crash, marked on its row
    tree.selected = str(A)
    assert tree.selected_process["name"] == "Demo.WorkerA"


def test_static_diagram_follows_filters_and_hidden_lanes(recorded):
    seq = SequenceDiagram(recorded)
    seq.filter_pattern("{:update, _}")
    assert "(2 messages, 2 processes)" in seq.static_html()
    assert "Demo.WorkerB ✖ crashed</b>: <code>:boom" in seq.static_html()   # after its message
    seq.hidden = [str(B)]
    html = seq.static_html()
    assert "(2 messages, 1 processes)" in html      # the hidden lifeline is gone
    assert "{:update, 1}" in html       # its messages still show, against the visible sender
    seq.filter_pattern(None)
    assert "(3 messages, 1 processes)" in seq.static_html()


def test_calls_and_their_replies_are_paired():
    from microscope_jupyter.beam.terms import ImproperList
    from microscope_jupyter.widgets.sequence_diagram import _call_reply_pairs

    ref1, ref2 = (Reference(Atom("demo@host"), 1, (k, 2, 3)) for k in (1, 2))
    alias = ImproperList((Atom("alias"),), ref2)
    terms = [(Atom("$gen_call"), (A, ref1), Atom("get")),          # 0: call, tag a plain ref
             (Atom("$gen_call"), (A, alias), Atom("put")),         # 1: call, tag an alias
             (Atom("update"), 1),                                  # 2: no pair
             (ImproperList((Atom("alias"),), ref2), Atom("ok")),   # 3: answers 1
             (ref1, 42)]                                           # 4: answers 0
    assert _call_reply_pairs(terms) == [4, 3, -1, 1, 0]


def test_the_nodes_log_lines_are_ticks_on_the_timeline_and_lines_in_time_travel():
    store = EventStore()
    agent = FakeAgent(store, names=[(B, NAME)])
    agent.event("receive", B, payload=(Atom("update"), 1))
    agent.event("log", B, aux=3, payload=(Atom("error"), b"sent 3, table says 2", {}))
    agent.event("log", B, aux=6, payload=(Atom("info"), b"took 3 ms", {}))
    agent.flush()
    s = OfflineSession(store, {}, None)
    tl = Timeline(s)
    lane = next(i for i, lane in enumerate(tl.lanes) if lane["id"] == str(B))
    assert [[g[0], g[2], g[3], g[4]] for g in tl.logs] == [
        [lane, 3, 1, "error: sent 3, table says 2"], [lane, 6, 2, "info: took 3 ms"]]
    tt = TimeTravel(s, cursor=2)
    row = next(r for r in tt.snapshot if r["pid"] == str(B))
    assert row["log"] == ["error: sent 3, table says 2", "info: took 3 ms"]
    assert "▸ error: sent 3, table says 2" in tt.static_html()


def test_process_graph_draws_loss_and_death_as_such(recorded):
    graph = ProcessGraph(recorded)
    states = {n["label"]: n["state"] for n in graph.nodes}
    assert states == {"Demo.WorkerA": "alive", "Demo.WorkerB": "crashed"}
    assert graph.nodes[1]["exit"] == ":boom"
    edge = graph.edges[0]
    assert (edge["count"], edge["lost"]) == (3, 1)            # {:update, 2} reached a dead pid
    assert graph.flights["lost"] == [0, 0, 1]
    assert edge["max_us"] is not None                         # the delivered ones' waits, not the lost
    page = graph.static_html()
    assert "1 lost" in page and "✖" in page and "crashed" in page
    assert "lost: sent to a dead process, or died unread" in page    # the shared legend


def test_process_graph_lays_out_the_same_processes_in_the_same_order():
    # two runs of the same app: who speaks first differs, the picture must not
    def run(first, second):
        store = EventStore()
        agent = FakeAgent(store, names=[(B, NAME), (A, Atom("Elixir.Demo.WorkerA")),
                                        (B2, Atom("Elixir.Demo.Stats"))])
        for sender, receiver in (first, second):
            agent.event("send", sender, receiver, payload=Atom("hi"))
            agent.event("receive", receiver, payload=Atom("hi"))
        agent.flush()
        return ProcessGraph(OfflineSession(store, {"node": "demo@host"}, None))

    one, other = run((B, B2), (A, B)), run((A, B), (B, B2))
    assert [n["label"] for n in one.nodes] == [n["label"] for n in other.nodes] == [
        "Demo.Stats", "Demo.WorkerA", "Demo.WorkerB"]
    assert one.edges == [{**e, "last_seq": e2["last_seq"]} for e, e2 in zip(other.edges, one.edges)]


def test_a_dead_process_says_how_it_ended_in_time_travel(recorded):
    tt = TimeTravel(recorded, cursor=len(recorded.store) - 1)
    dead = next(r for r in tt.snapshot if not r["alive"])
    assert dead["crashed"] and dead["exit_text"] == "exited: :boom"
    assert "✖ exited: :boom" in tt.static_html()
