"""Flight recorders on real nodes: left running with no session under a steady
load, bounded in node memory (measured from a separate node), frozen by the
crash of the process they watch, pulled by a new session into a recording
every query works on, and gone without a trace at their expiry."""

from __future__ import annotations


import pytest

import microscope_jupyter as mic
from microscope_jupyter import Atom
from microscope_jupyter.errors import TraceError, TraceLimitError, TraceSpecError
from nodes import AGENT_MEMORY, RUNTIMES, load_test_module, wait_clean, wait_until
from nodes import CLEAN

MAX_BYTES = 500_000
# What the recorder's processes hold beyond the batches it keeps: their
# heaps, the tracer's batch in progress, the controller's tables.
SLACK = 1_200_000
MODULES = [Atom("mic_ledger")]

LOAD = """spawn(fun L() -> catch mic_ledger:deposit(1), timer:sleep(1), L() end)."""


@pytest.fixture(params=RUNTIMES)
def ledger_node(request, node_factory, tmp_path):
    node = node_factory(request.param, prefix=f"fr{request.param[-2:]}")
    with mic.attach(node.name, cookie=node.cookie) as s:
        load_test_module(s, "mic_ledger", tmp_path)
        s.rpc("mic_ledger", "start", [])
    yield node
    node.stop()


def test_a_recorder_outlives_its_session_stays_bounded_and_catches_the_crash(ledger_node):
    node = ledger_node
    with mic.attach(node.name, cookie=node.cookie) as s:
        s.flight_recorder("mic_ledger_sup", max_bytes=MAX_BYTES, max_age="60s", until="15s",
                          triggers=["crash:mic_ledger"])
        feeder = s.eval_erlang(LOAD)
    # No session now. The observer is a separate node that only reads.
    with mic.attach(node.name, cookie=node.cookie) as observer:
        recorders = observer.flight_recorders()
        assert len(recorders) == 1 and recorders.state[0] == "recording"
        samples = []

        def wrapped_twice():
            samples.append(observer.eval_erlang(AGENT_MEMORY))
            return observer.flight_recorders().evicted[0] > 2 * recorders.events.max()

        wait_until(wrapped_twice, timeout=20, step=0.25)   # the ring has turned over
        assert max(samples) <= MAX_BYTES + SLACK, samples
        held = observer.flight_recorders()
        assert held.held_bytes[0] <= MAX_BYTES and held.events[0] > 0
        ledger = observer.eval_erlang("whereis(mic_ledger).")
        observer.eval_erlang("exit(Ledger, boom).", Ledger=ledger)
        wait_until(lambda: observer.flight_recorders().frozen[0] == 1)
        samples.append(observer.eval_erlang(AGENT_MEMORY))
        assert max(samples) <= MAX_BYTES + SLACK, samples

    with mic.attach(node.name, cookie=node.cookie) as s2:
        rec = s2.pull_flight_recorder()
        frozen = rec.flight["frozen"]
        assert list(frozen.why) == ["crash of mic_ledger"]
        events = s2.events
        crash = events[(events.kind == "exit") & (events.pid == str(ledger))]
        assert len(crash) == 1 and crash.text.iloc[0] == ":boom"
        at = crash.ts.iloc[0]
        assert frozen["from"][0] <= at <= frozen["to"][0]
        # what led to it: the ledger's own messages just before it died
        before = events[(events.pid == str(ledger)) & (events.kind == "receive") & (events.ts < at)]
        assert len(before) >= 10
        assert s2.store.dropped == 0 and rec.status()["events"] == len(events)
        # time travel works on it: the ledger's balance before the crash
        states = s2.states(str(ledger))
        assert len(states) > 0
        # the recorder is still there for the next person
        assert len(s2.flight_recorders()) == 1
        s2.eval_erlang("exit(Feeder, kill).", Feeder=feeder)

    # Expiry (15 s after the start) removes everything, module included.
    with mic.attach(node.name, cookie=node.cookie) as observer:
        wait_until(lambda: len(observer.flight_recorders()) == 0, timeout=40, step=0.5)
        assert wait_clean(observer, MODULES) == CLEAN
        wait_until(lambda: observer.rpc("code", "is_loaded", [Atom("microscope_agent")]) is False,
                   timeout=5)


def test_removing_a_recorder_from_another_session_cleans_up(ledger_node):
    node = ledger_node
    with mic.attach(node.name, cookie=node.cookie) as s:
        fr = s.flight_recorder("mic_ledger_sup", granularity="counters", until="1h",
                               modules=["mic_ledger:handle_call/3"], mailbox_ms=100)
        # counted by the BEAM, not traced: no call event, a count per sample
        s.eval_erlang("[mic_ledger:deposit(1) || _ <- lists:seq(1, 50)], ok.")
        assert fr.status()["granularity"] == "counters"
        # No trace flag, yet a crash is seen, and the restarted ledger is found and watched.
        for crashes in (1, 2):
            ledger = s.eval_erlang("whereis(mic_ledger).")
            s.eval_erlang("exit(L, boom).", L=ledger)
            wait_until(lambda: fr.status()["frozen"] == crashes)
            wait_until(lambda: s.eval_erlang("whereis(mic_ledger).") not in (ledger, Atom("undefined")))
    with mic.attach(node.name, cookie=node.cookie) as other:
        recorders = mic.flight_recorders(node.name, cookie=node.cookie)   # a third session
        assert list(recorders.id) == [fr.id] and recorders.node[0] == node.name
        assert recorders.expires[0] - recorders.started[0] == pd_hours(1)
        rec = other.pull_flight_recorder(str(fr.id), remove=True)
        assert rec.pulled_from == fr.id
        assert len(other.flight_recorders()) == 0
        assert wait_clean(other, MODULES) == CLEAN
        # counters only: no message was traced, lifecycle and samples were
        kinds = set(other.events.kind)
        assert not kinds & {"send", "receive", "state"}
        assert not kinds & {"call", "return"}
        calls = other.metrics()
        calls = calls[calls.metric == "calls"]
        assert calls.value.sum() >= 50 and set(calls.detail) == {":mic_ledger.handle_call/3"}
        exits = other.events[other.events.kind == "exit"]
        assert list(exits.text) == [":boom", ":boom"] and exits.pid.nunique() == 2
        with pytest.raises(TraceError, match="0 flight recorders"):
            other.pull_flight_recorder()
    with mic.attach(node.name, cookie=node.cookie) as observer:
        assert observer.rpc("code", "is_loaded", [Atom("microscope_agent")]) is False


def pd_hours(n):
    import pandas as pd

    return pd.Timedelta(hours=n)


def test_bad_recorder_options_say_what_to_do(otp25_node):
    with mic.attach(otp25_node.name, cookie=otp25_node.cookie) as s:
        with pytest.raises(TraceSpecError, match="unknown trigger 'crashed'"):
            s.flight_recorder(triggers=["crashed"])
        with pytest.raises(TraceLimitError, match="too small"):
            s.flight_recorder(max_bytes="1KB")
        with pytest.raises(TraceSpecError, match="unknown granularity"):
            s.flight_recorder(granularity="everything")
        with pytest.raises(TraceSpecError, match="no process nope"):
            s.flight_recorder("nope")
        assert len(s.flight_recorders()) == 0
