"""store.names: the vectorised lookups agree with the one rule, pair by pair."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings, strategies as st

from microscope_jupyter.store.names import NameIndex
from microscope_jupyter.store.schema import KIND_CODES

KINDS = [KIND_CODES[k] for k in ("register", "unregister", "exit", "send")]
NAMES = {10: "a", 11: "b", 12: "c"}           # peer ids of register events -> names


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(KINDS), st.integers(1, 4), st.sampled_from(sorted(NAMES))),
                max_size=30),
       st.lists(st.tuples(st.integers(1, 4), st.sampled_from(sorted(NAMES.values()))), max_size=3))
def test_names_at_and_last_names_follow_name_at(rows, initial):
    kind = np.array([k for k, _, _ in rows], dtype=np.uint8)
    pid = np.array([p for _, p, _ in rows], dtype=np.int64)
    peer = np.array([n for _, _, n in rows], dtype=np.int64)
    index = NameIndex(kind, pid, peer, initial, NAMES.get)
    gids, seqs = np.meshgrid(np.arange(0, 6), np.arange(-1, len(rows) + 1))
    found = index.names_at(gids.ravel(), seqs.ravel())
    assert list(found) == [index.name_at(int(g), int(s)) for g, s in zip(gids.ravel(), seqs.ravel())]
    expected = {g: [n for _, n in index.spans(g) if n][-1] for g in range(6)
                if any(n for _, n in index.spans(g))}
    assert index.last_names() == expected


def test_a_process_addressed_by_name_and_node_is_spelled_as_its_name_column_spells_it():
    """Two nodes: a sends to {Sink, :"b@host"}; Sink takes two of three. The one
    still in flight names its receiver as the delivered ones do ("Sink", the node
    being in the receiver's pid), not as the address it was sent to."""
    from fake_agent import FakeAgent
    from microscope_jupyter.beam.terms import Atom, Pid
    from microscope_jupyter.saved import OfflineSession
    from microscope_jupyter.store.event_store import EventStore

    store = EventStore()
    sender, sink = Pid(Atom("a@host"), 50, 0, 1), Pid(Atom("b@host"), 60, 0, 1)
    a = FakeAgent(store, source="a", node="a@host")
    b = FakeAgent(store, source="b", node="b@host", names=[(sink, Atom("Sink"))])
    for n in range(3):
        a.event("send", sender, peer=(Atom("Sink"), Atom("b@host")), payload=n)
    for n in range(2):
        b.event("receive", sink, payload=n)
    a.flush()
    b.flush()
    messages = OfflineSession(store, {}, None).messages()
    assert list(messages["status"]) == ["delivered", "delivered", "in_flight"]
    assert list(messages["receiver"]) == ["<0.60.0>@b@host"] * 3
    assert list(messages["receiver_name"]) == ["Sink"] * 3


def test_a_later_traces_names_hold_from_its_start_and_survive_a_save(tmp_path):
    """Two traces in one session: in the first, Sink (<0.60.0>) dies and <0.61.0>
    takes its name; between the traces the app restarts and <0.70.0> holds it
    when the second begins. The restart is <0.60.0> -> <0.61.0>, and the second
    trace's holder takes over only from its own start, also once saved."""
    from fake_agent import FakeAgent
    from microscope_jupyter.beam.terms import Atom, Pid
    from microscope_jupyter.saved import OfflineSession, load
    from microscope_jupyter.store.event_store import EventStore

    node = "demo@host"
    sink, sink2, sink3 = (Pid(Atom(node), n, 0, 1) for n in (60, 61, 70))
    name = Atom("Sink")
    store = EventStore()
    first = FakeAgent(store, source="a", node=node, names=[(sink, name)])
    first.event("exit", sink, payload=Atom("boom"))
    first.event("register", sink2, name)
    first.flush()
    second = FakeAgent(store, source="b", node=node, names=[(sink3, name)])
    second.event("send", sink3, peer=sink3, payload=Atom("tick"))
    second.flush()
    for s in (OfflineSession(store, {}, None), load(OfflineSession(store, {}, None).save(tmp_path / "r"))):
        ids = s.store.id_texts()
        found = [(seq, ids[new], ids[old]) for seq, new, _, old in s.store.names().successions()]
        assert found[0] == (1, str(sink2), str(sink)), found
        assert [f for f in found if f[0] < 0] == []
        restarts = s.findings().query("kind == 'restart'")
        assert restarts["summary"].tolist()[0] == f"Sink was restarted as {sink2} after {sink} died"
