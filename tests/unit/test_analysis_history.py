"""Time travel over hand-built recordings: restarts, in-flight messages, gaps, disorder."""

from __future__ import annotations

import pandas as pd
import pytest

from fake_agent import NODE, A, B, B2, C, OFFSET, FakeAgent
from microscope_jupyter.saved import OfflineSession
from microscope_jupyter.analysis.history import History
from microscope_jupyter.beam.terms import Atom, ImproperList, Reference
from microscope_jupyter.errors import QueryError
from microscope_jupyter.store.event_store import EventStore

GS = Atom("gen_server")
NAME = Atom("Elixir.Demo.WorkerB")


def state(msg, before, after):
    return (msg, {Atom("n"): before}, {Atom("n"): after}, Atom("noreply"), GS)


@pytest.fixture
def story():
    """WorkerB handles two updates, a third arrives and kills it, a new WorkerB takes the name."""
    store = EventStore()
    agent = FakeAgent(store, names=[(B, NAME), (A, Atom("Elixir.Demo.WorkerA"))])
    agent.event("link", B, A)                                       # 0
    agent.event("send", A, B, payload=(Atom("up"), 1))              # 1
    agent.event("receive", B, payload=(Atom("up"), 1))              # 2
    agent.event("send", A, B, payload=(Atom("up"), 2))              # 3
    agent.event("receive", B, payload=(Atom("up"), 2))              # 4  queued behind 1
    agent.event("state", B, payload=state((Atom("up"), 1), 0, 1), aux=500)   # 5
    agent.event("state", B, payload=state((Atom("up"), 2), 1, 2), aux=500)   # 6
    agent.event("send", A, B, payload=Atom("boom"))                 # 7
    agent.event("receive", B, payload=Atom("boom"))                 # 8
    agent.event("exit", B, payload=Atom("badarg"))                  # 9
    agent.event("unregister", B, NAME)                              # 10
    agent.event("spawn", A, B2, mfa=(Atom("m"), Atom("init"), 1))   # 11
    agent.event("register", B2, NAME)                               # 12
    agent.event("send", A, B2, payload=(Atom("up"), 3))             # 13
    agent.event("receive", B2, payload=(Atom("up"), 3))             # 14  in flight at stop
    agent.flush()
    return store


def row(snapshot, pid):
    return snapshot[snapshot["pid"] == str(pid)].iloc[0]


def test_state_mailbox_and_name_move_with_time(story):
    tt = History(story)
    at = tt.snapshot_at(4)
    b = row(at, B)
    assert b["name"] == "Demo.WorkerB" and b["alive"]
    assert b["state"] == {Atom("n"): 0}                      # before the first callback
    assert b["mailbox"] == [(Atom("up"), 1), (Atom("up"), 2)]
    assert b["links"] == [str(A)]
    assert row(tt.snapshot_at(5), B)["mailbox"] == [(Atom("up"), 2)]
    assert row(tt.snapshot_at(6), B)["state"] == {Atom("n"): 2}
    assert row(tt.snapshot_at(8), B)["mailbox"] == [Atom("boom")]   # the message that kills it


def test_restarted_process_reuses_the_name(story):
    tt = History(story)
    after = tt.snapshot_at(14)
    old, new = row(after, B), row(after, B2)
    assert not old["alive"] and old["name"] is None and old["mailbox"] == []
    assert new["alive"] and new["name"] == "Demo.WorkerB"
    assert new["mailbox"] == [(Atom("up"), 3)]              # still in flight when we stopped
    assert str(B2) not in set(tt.snapshot_at(10)["pid"])    # not born yet


def test_step_across_all_and_within_one_process(story):
    tt = History(story)
    tt.seek(0)
    assert tt.step(+1).attrs["seq"] == 1
    assert tt.step(+1, proc="Demo.WorkerB").attrs["seq"] == 2    # next event of a WorkerB
    assert tt.step(+1, proc=str(B)).attrs["seq"] == 4
    assert tt.step(-1, proc=str(B)).attrs["seq"] == 2
    assert tt.step(-5).attrs["seq"] == 0                          # clamps at the start
    tt.seek(13)
    assert tt.step(+1, proc="Demo.WorkerB").attrs["seq"] == 14    # the new WorkerB
    # Names resolve as everywhere else: the Erlang spelling of the alias works too.
    tt.seek(0)
    assert tt.step(+1, proc="Elixir.Demo.WorkerB").attrs["seq"] == 2
    with pytest.raises(QueryError, match="no recorded process matches 'Nobody'"):
        tt.step(+1, proc="Nobody")


def test_moments_by_timestamp_and_event(story):
    tt = History(story)
    ts = pd.Timestamp(OFFSET + 8000, tz="UTC")  # event i is stamped 1000 * (i + 2)
    assert tt.snapshot_at(ts).attrs["seq"] == 6
    assert tt.snapshot_at(ts.isoformat()).attrs["seq"] == 6
    event = OfflineSession(story, {}, None).events.iloc[9]
    assert tt.snapshot_at(event).attrs["seq"] == 9


def test_diff_between_moments(story):
    tt = History(story)
    changes = tt.diff(4, 12)
    kinds = set(zip(changes["pid"], changes["change"]))
    assert (str(B), "died") in kinds and (str(B2), "appeared") in kinds
    state_change = changes[(changes["pid"] == str(B)) & (changes["change"] == "state")]
    assert state_change["text"].tolist() == [".n: 0 -> 2"]


def test_current_callback_while_a_handler_runs():
    store = EventStore()
    agent = FakeAgent(store, names=[(B, NAME)])
    agent.event("receive", B, payload=1, ts=1000)
    agent.event("send", B, A, payload=Atom("side_effect"), ts=1500)   # inside the handler
    agent.event("state", B, payload=state(1, 0, 1), aux=1500, ts=2000)  # handler ran 500..2000
    agent.flush()
    tt = History(store)
    assert row(tt.snapshot_at(1), B)["current_callback"] == "handle_info"
    assert row(tt.snapshot_at(2), B)["current_callback"] == "handle_info"
    assert row(tt.snapshot_at(0), B)["current_callback"] == "handle_info"


def test_gaps_and_out_of_order_batches():
    store = EventStore()
    agent = FakeAgent(store, names=[(B, NAME)])
    agent.event("state", B, payload=state(Atom("a"), 0, 1), ts=3000)
    agent.event("receive", B, payload=Atom("a"), ts=2000)   # arrived late in the batch
    agent.event("dropped", aux=500, ts=2500)
    agent.flush(seen=502, dropped=500)
    agent.event("state", B, payload=state(Atom("b"), 1, 2), ts=4000)
    agent.flush()
    recorded = OfflineSession(store, {}, None)
    kinds = recorded.events["kind"].tolist()
    assert kinds == ["receive", "dropped", "state", "state"]   # clock order within the batch
    tt = recorded.time_travel()
    assert row(tt.snapshot_at(1), B)["mailbox"] == [Atom("a")]
    assert row(tt.snapshot_at(3), B)["state"] == {Atom("n"): 2}
    gap = recorded.findings()
    assert gap.loc[gap["kind"] == "trace_gap", "summary"].iloc[0].startswith("the agent dropped 500")


def test_links_and_monitors_held_at_start_and_made_during_the_trace():
    """B is linked to A and monitored by C before the trace; A monitors B twice
    during it and drops one; C's monitor ends when C learns B died."""
    store = EventStore()
    agent = FakeAgent(store, relations=[(B, Atom("link"), A), (C, Atom("monitor"), B)])
    ref1, ref2 = Reference(Atom(NODE), 1, (1, 2, 3)), Reference(Atom(NODE), 1, (4, 5, 6))
    agent.event("send", A, B, payload=Atom("hi"))                          # 0
    agent.event("receive", B, payload=Atom("hi"))                          # 1
    agent.event("receive", C, payload=Atom("tick"))                        # 2
    agent.event("monitor", A, B, payload=(ref1, B))                        # 3
    agent.event("monitor", A, B, payload=(ref2, Atom("worker_b")))         # 4
    agent.event("demonitor", A, B, payload=ref1)                           # 5
    agent.event("unlink", A, B)                                            # 6
    agent.event("exit", B, payload=Atom("boom"))                           # 7
    agent.event("receive", C, payload=(Atom("DOWN"), ref2, Atom("process"), B, Atom("boom")))  # 8
    agent.flush()
    tt = History(store)
    start = tt.snapshot_at(2)
    assert row(start, B)["links"] == [str(A)] and row(start, A)["links"] == [str(B)]
    assert row(start, B)["monitored_by"] == [str(C)] and row(start, C)["monitors"] == [str(B)]
    assert row(start, A)["monitors"] == []
    assert row(tt.snapshot_at(4), A)["monitors"] == [str(B), str(B)]
    assert row(tt.snapshot_at(4), B)["monitored_by"] == sorted([str(A), str(A), str(C)])
    after_demonitor = tt.snapshot_at(5)
    assert row(after_demonitor, A)["monitors"] == [str(B)]
    assert row(tt.snapshot_at(6), A)["links"] == [] and row(tt.snapshot_at(6), B)["links"] == []
    dead = tt.snapshot_at(7)
    assert row(dead, A)["monitors"] == [] and row(dead, C)["monitors"] == []
    assert row(dead, B)["monitored_by"] == [] and not row(dead, B)["alive"]


def test_a_reply_to_a_plain_process_call_never_waits_in_its_mailbox():
    """A plain process (no GenServer callbacks) calls B: the reply is taken by the
    call's own receive; an ordinary message waits until the process acts."""
    store = EventStore()
    agent = FakeAgent(store)
    ref = Reference(Atom(NODE), 1, (7, 8, 9))
    agent.event("send", A, B, payload=(Atom("$gen_call"), (A, ImproperList((Atom("alias"),), ref)),
                                       Atom("get")))                                  # 0
    agent.event("receive", A, payload=(ImproperList((Atom("alias"),), ref), 42))     # 1
    agent.event("receive", A, payload=(Atom("io_reply"), ref, Atom("ok")))           # 2
    agent.event("receive", A, payload=(Atom("update"), 1))                           # 3
    agent.event("send", A, C, payload=Atom("done"))                                  # 4
    agent.flush()
    tt = History(store)
    assert row(tt.snapshot_at(2), A)["mailbox"] == []
    assert row(tt.snapshot_at(3), A)["mailbox"] == [(Atom("update"), 1)]
    assert row(tt.snapshot_at(4), A)["mailbox"] == []


def test_mailbox_length_starts_from_the_nodes_own_count():
    """Messages queued before the trace, or sent by untraced processes, have no
    events; the agent's samples of message_queue_len carry them, and arrivals
    and callbacks move the count between samples."""
    store = EventStore()
    agent = FakeAgent(store, names=[(B, NAME)])
    agent.event("mailbox", B, aux=500)                                         # 0 at start
    agent.event("receive", B, payload=(Atom("up"), 1))                         # 1
    agent.event("state", B, payload=state(Atom("old"), 0, 1), aux=500)         # 2 took one
    agent.event("state", B, payload=state(Atom("old"), 1, 2), aux=500)        # 3 took one
    agent.event("timeout", B)                                                  # 4 no message
    agent.event("mailbox", B, aux=480)                                         # 5 sampled
    agent.event("receive", B, payload=(Atom("up"), 2))                         # 6
    agent.flush()
    tt = History(store)
    lengths = [int(tt.snapshot_at(i).set_index("pid").loc[str(B), "mailbox_len"]) for i in range(7)]
    # each moment counts from the sample on either side that gives fewer: 20
    # messages left unseen between the two, and the later sample already knows
    assert lengths == [500, 482, 481, 480, 480, 480, 481]
    seqs, levels = next(p for p in tt.processes() if p.pid == str(B)).mailbox_levels()
    assert int(levels.max()) == 500
    finding = OfflineSession(store, {}, None).findings()
    growth = finding[finding["kind"] == "mailbox_growth"]
    # findings speak of the node's samples only, never of the estimate between them
    assert growth["summary"].tolist() == ["the mailbox of Demo.WorkerB grew to 500 messages "
                                          "(the node's own count), still 480 at its last sample"]
    bases = [tt.snapshot_at(i).set_index("pid").loc[str(B), "mailbox_basis"] for i in (0, 1, 5)]
    assert bases[0] == "node" and bases[2] == "node"
    assert bases[1] == "estimate: the node's 480 at seq 5, later, 0 arrived and 2 taken between"


def test_a_large_state_shows_what_changed_and_is_never_judged():
    store = EventStore()
    agent = FakeAgent(store, names=[(B, NAME)])
    large = Atom("$microscope_large")
    extra = {Atom("n"): 2, Atom("tool"): 800,
             Atom("changes"): ([([(Atom("key"), Atom("count"))], 7)], True)}
    agent.event("state", B, payload=(Atom("bump"), large, large, (Atom("reply"), 7), GS, extra),
                aux=3000)
    agent.flush()
    session = OfflineSession(store, {}, None)
    row = session.states().iloc[0]
    assert bool(row["changed"]) and row["tool_us"] == 0.8 and row["duration_us"] == 3.0
    assert session.query.state_timeline("Demo.WorkerB")["changes"].tolist() == [".count: now 7"]
    assert "#NotCopied<large state>" in row["text"]
    checked = session.expect("Demo.WorkerB", lambda before, msg, after: False)
    assert checked.empty and checked.attrs["unjudged"] == 1


def test_mailbox_levels_agree_with_mailbox_len_at_every_seq():
    import numpy as np

    from microscope_jupyter.analysis.process_history import ProcessHistory

    rng = np.random.default_rng(1)
    for _ in range(200):
        p = ProcessHistory(1, "<0.1.0>", 0)
        p.recv_seqs = np.sort(rng.choice(200, rng.integers(0, 40), replace=False))
        p.taken_seqs = np.sort(rng.choice(200, rng.integers(0, 40), replace=False))
        p.sample_seqs = np.sort(rng.choice(200, rng.integers(0, 5), replace=False))
        p.sample_values = rng.integers(0, 20, len(p.sample_seqs))
        seqs, levels = p.mailbox_levels()
        assert levels.tolist() == [p.mailbox_len(int(q)) for q in seqs]


def test_a_genserver_calling_from_a_callback_does_not_grow_its_mailbox():
    """B handles updates, and in each callback calls C: the reply arrives and is
    taken by the call's own receive, never queued. The mailbox stays 0 (it
    used to climb by one a reply)."""
    store = EventStore()
    agent = FakeAgent(store)
    for n in range(5):
        update = (Atom("update"), n)
        ref = Reference(Atom(NODE), 1, (n, 8, 9))
        agent.event("receive", B, payload=update)
        agent.event("send", B, C, payload=(Atom("$gen_call"), (B, ref), Atom("received")))
        agent.event("receive", B, payload=(ref, Atom("ok")))
        agent.event("state", B, payload=(update, n, n + 1, Atom("noreply"), Atom("gen_server")),
                    aux=1000)
    agent.flush()
    history = History(store)
    b = next(p for p in history.processes() if p.pid == str(B))
    seqs, levels = b.mailbox_levels()
    assert levels.max() <= 1 and levels[-1] == 0, levels.tolist()
    assert b.mailbox_len(len(store) - 1) == 0


def test_a_sample_taken_while_a_callback_awaits_tasks_invents_no_backlog():
    """A GenServer awaits a Task inside a callback: the node's sample counts the
    reply and the DOWN still queued, while the receive events show both arriving
    and leaving (at the reply's demonitor) before the sample's own event. That
    sample stands at its own seq, and is not carried to its neighbours."""
    store = EventStore()
    agent = FakeAgent(store, names=[(B, NAME)])
    ref = Reference(Atom(NODE), 1, (4, 5, 6))
    agent.event("mailbox", B, aux=0)                                                   # 0
    agent.event("receive", B, payload=(Atom("$gen_call"), (A, ref), Atom("search")))  # 1
    agent.event("receive", B, payload=(ref, 42))                                      # 2
    agent.event("receive", B, payload=(Atom("DOWN"), ref, Atom("process"), C, Atom("normal")))  # 3
    agent.event("demonitor", B, C, payload=ref)                                       # 4
    agent.event("mailbox", B, aux=2)                                                  # 5
    agent.event("state", B, payload=state((Atom("$gen_call"), (A, ref), Atom("search")), 0, 1),
                aux=500)                                                              # 6
    call = (Atom("$gen_call"), (A, ref), Atom("search"))
    for _ in range(2):
        agent.event("receive", B, payload=call)                                       # 7, 9
        agent.event("state", B, payload=state(call, 1, 2), aux=500)                   # 8, 10
    agent.event("mailbox", B, aux=0)                                                  # 11
    agent.flush()
    tt = History(store)
    proc = next(p for p in tt.processes() if p.pid == str(B))
    # a call waits from its receive to its callback's end (the model's take)
    assert [proc.mailbox_len(i) for i in range(12)] == [0, 1, 2, 3, 1, 2, 0, 1, 0, 1, 0, 0]
    assert proc.mailbox_basis(5) == "node"
    assert proc.mailbox_basis(7) == "estimate: the node's 0 at seq 11, later, 1 arrived and 2 taken between"
    # the reply left the queue at its demonitor, with the flushed DOWN
    assert proc.handled_seqs.tolist()[1:3] == [4, 4]
