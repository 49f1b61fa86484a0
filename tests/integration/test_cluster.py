"""Clusters of real nodes (three OTP 25, and a mixed OTP 25/28 one): one
attach finds every node, a trace spans them, a message sent on one node
pairs with its receive on another, no receive lands before its send, a node
leaving mid-trace is reported while the others go on, a node joining is
traced, and every node is clean after detach."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import microscope_jupyter as mic
from microscope_jupyter import Atom
from microscope_jupyter.widgets import SequenceDiagram
from nodes import CLEAN, load_test_module, wait_clean, wait_until

MIXES = {"otp25": ("otp25", "otp25", "otp25"), "mixed": ("otp25", "otp28", "otp25")}
RELAY = [Atom("mic_relay")]


def start_member(node_factory, runtime, cookie, prefix, tmp_path, join=None):
    node = node_factory(runtime, prefix=prefix, cookie=cookie)
    with mic.attach(node.name, cookie=node.cookie) as s:
        load_test_module(s, "mic_relay", tmp_path)
        s.rpc("mic_relay", "start", [])
        if join is not None:
            assert s.rpc("net_kernel", "connect_node", [Atom(join)]) is True
    return node


@pytest.fixture(params=sorted(MIXES))
def three(request, node_factory, tmp_path):
    first, *rest = MIXES[request.param]
    n1 = start_member(node_factory, first, None, "cl1", tmp_path)
    others = [start_member(node_factory, rt, n1.cookie, f"cl{i + 2}", tmp_path, join=n1.name)
              for i, rt in enumerate(rest)]
    nodes = [n1, *others]
    yield nodes
    for node in nodes:
        node.stop()


def pass_token(c, route, hops):
    before = hops_done(c, route)
    c.sessions[route[0]].rpc("mic_relay", "pass", [[Atom(n) for n in route], hops])
    wait_until(lambda: hops_done(c, route) >= before + hops, timeout=30)


def hops_done(c, route):
    return sum(c.sessions[n].rpc("mic_relay", "hops", []) for n in route)


def across(c, messages):
    """The paired messages whose send and receive are on different nodes."""
    paired = messages[messages["send_seq"].notna() & messages["receive_seq"].notna()]
    raw = c.store.raw()
    send = paired["send_seq"].to_numpy(dtype=np.int64)
    recv = paired["receive_seq"].to_numpy(dtype=np.int64)
    names = np.array(raw.node_names)
    return paired.assign(from_node=names[raw.node[send]], to_node=names[raw.node[recv]])[
        raw.node[send] != raw.node[recv]]


def test_a_trace_spans_the_cluster_and_every_node_is_clean_after(three, tmp_path):
    names = [n.name for n in three]
    c = mic.attach_cluster(names[0], cookie=three[0].cookie)
    try:
        assert sorted(c.nodes) == sorted(names)       # found through the seed
        with c.trace() as rec:
            pass_token(c, names, 60)
        status = rec.nodes()
        assert sorted(status["node"]) == sorted(names) and (status["events"] > 0).all()
        assert rec.status()["events"] == status["events"].sum() == len(c.events)
        # plain Erlang nodes: each says once that lines=True records nothing there
        assert sorted(note.split()[0] for note in rec.status()["notes"]) == sorted(names)
        cross = across(c, c.messages())
        # every hop of the token crosses nodes; each pair of neighbours is seen
        assert len(cross) >= 60
        assert {(a, b) for a, b in zip(cross.from_node, cross.to_node)} >= {
            (names[i], names[(i + 1) % 3]) for i in range(3)}
        early = cross[cross["latency_us"] < 0]      # no receive before its send
        assert early.empty, (c.clock.to_string(), early.to_string())
        assert cross["sender"].str.contains("@").all()   # a cluster's pids name their node
        assert set(c.events["node"].astype(str)) == set(names)
        # every view shows the node: each node's relay is its own lifeline
        lanes = [lane["label"] for lane in SequenceDiagram(c).lanes]
        assert sorted(lanes) == sorted(f"mic_relay ({n})" for n in names), lanes
        tree = c.supervision_tree()                 # one forest, each pid with its node
        relays = tree[tree["name"] == "mic_relay"]
        assert sorted(relays["node"]) == sorted(names)
        assert all(p.endswith("@" + n) for p, n in zip(relays["pid"], relays["node"]))
        # saved partitioned by node; offline, the messages still pair across nodes
        saved = c.save(tmp_path / "rec")
        assert sorted(p.name for p in (saved / "events").iterdir()) == sorted(
            f"node={n}" for n in names)
        offline = mic.load(saved)
        assert len(across(offline, offline.messages())) == len(cross)
    finally:
        c.detach()
    for node in three:
        with mic.attach(node.name, cookie=node.cookie) as observer:
            assert wait_clean(observer, RELAY) == CLEAN
            assert observer.rpc("code", "is_loaded", [Atom("microscope_agent")]) is False


def test_a_skewed_clock_is_put_right_by_send_before_receive(three):
    names = [n.name for n in three]
    # Say the second node's clock is 50 ms ahead: its events land 50 ms early,
    # before the sends that caused them, until send-before-receive moves them.
    with mic.attach_cluster(names[0], cookie=three[0].cookie,
                            clock_offsets={names[1]: 50_000_000}) as c:
        with c.trace():
            pass_token(c, names, 30)
        cross = across(c, c.messages())
        early = cross[cross["latency_us"] < 0]
        columns = ["send_seq", "receive_seq", "from_node", "to_node", "latency_us"]
        with pd.option_context("display.width", 250, "display.max_columns", 20):
            why = f"{c.clock}\n{early[columns] if len(early) else cross[columns]}"
        assert early.empty, why
        clock = c.clock.set_index("node")
        assert clock.loc[names[1], "applied_us"] == 50_000, why
        assert 45_000 < clock.loc[names[1], "shift_us"] <= 50_000, why
        into_second = cross[cross.to_node == names[1]]
        assert len(into_second) and into_second["latency_us"].min() < 5_000, why   # not too far


def test_a_relay_is_spelled_one_way_whether_its_message_arrived_or_not(three):
    """The relay on the second node takes its tokens, then is killed: the token
    sent to {mic_relay, node} next reaches no one. Every row names the receiver
    as the name column does (mic_relay), not as the address (mic_relay@node)."""
    first, second = (n.name for n in three[:2])
    to_second = f"mic_relay@{second}"                  # the address, as the peer column has it
    with mic.attach_cluster(first, cookie=three[0].cookie) as c:
        with c.trace():
            pass_token(c, [first, second], 4)
            c.sessions[second].eval_erlang("exit(whereis(mic_relay), kill), ok.")
            wait_until(lambda: ((c.events["kind"] == "exit")
                                & (c.events["name"] == "mic_relay")).any())
            sent = lambda: int(((c.events["kind"] == "send")
                                & (c.events["peer"] == to_second)).sum())
            before = sent()
            c.sessions[first].rpc("mic_relay", "pass", [[Atom(first), Atom(second)], 2])
            wait_until(lambda: sent() > before)
        messages = c.messages()
        named = messages[messages["receiver"].str.endswith("@" + second, na=False)
                          | (messages["receiver"] == to_second)]
        assert {"delivered", "unobserved"} <= set(named["status"]), named
        assert set(named["receiver_name"]) == {"mic_relay"}, named


def test_nodes_leaving_and_joining_mid_trace(three, node_factory, tmp_path):
    n1, n2, n3 = three
    with mic.attach_cluster(n1.name, cookie=n1.cookie) as c:
        rec = c.trace()
        pass_token(c, [n1.name, n2.name, n3.name], 9)
        n3.stop()
        wait_until(lambda: n3.name in c.left, timeout=30)
        state = rec.nodes().set_index("node")
        assert "left the cluster" in state.loc[n3.name, "message"]
        assert state.loc[n3.name, "state"] == "disconnected"
        # the others go on, and a node that joins is attached and traced
        n4 = start_member(node_factory, "otp25", n1.cookie, "cl4", tmp_path, join=n1.name)
        wait_until(lambda: n4.name in rec.recordings, timeout=30)
        seq_at_leave = len(c.store)
        pass_token(c, [n1.name, n2.name, n4.name], 9)
        rec.stop()
        later = c.events[c.events["seq"] >= seq_at_leave]
        assert {n1.name, n2.name, n4.name} <= set(later["node"].astype(str))
        cross = across(c, c.messages())
        assert ((cross.from_node == n2.name) & (cross.to_node == n4.name)).any()
        assert n4.name in c.nodes and n3.name not in c.nodes
