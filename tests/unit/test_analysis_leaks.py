"""Processes and monitors that pile up (analysis/leaks.py)."""

from __future__ import annotations

from fake_agent import MS, NODE, FakeAgent
from microscope_jupyter.analysis.leaks import monitor_leaks, process_leaks
from microscope_jupyter.beam.terms import Atom, Pid, Reference
from microscope_jupyter.saved import OfflineSession
from microscope_jupyter.store.event_store import EventStore

GATEWAY = Pid(Atom(NODE), 600, 0, 7)
UPSTREAM = Pid(Atom(NODE), 601, 0, 7)
HELPER = (Atom("gateway"), Atom("await_upstream"), 2)


def _session(build, end_ms=5000) -> OfflineSession:
    store = EventStore()
    agent = FakeAgent(store, names=[(GATEWAY, Atom("gateway")), (UPSTREAM, Atom("upstream"))])
    build(agent)
    agent.event("mailbox", GATEWAY, aux=0, ts=end_ms * MS)
    agent.flush()
    return OfflineSession(store, {}, None)


def _helpers(agent, count, every_ms, stuck):
    """The gateway spawns a helper every ``every_ms``; each asks the upstream, and
    those the upstream answers relay it and exit; ``stuck(n)`` ones get nothing."""
    for n in range(count):
        t = n * every_ms * MS
        helper = Pid(Atom(NODE), 1000 + n, 0, 7)
        ref = Reference(Atom(NODE), 7, (n, 5, 5))
        agent.event("spawn", GATEWAY, helper, mfa=HELPER, ts=t)
        request = (Atom("lookup"), helper, ref, n)
        agent.event("send", helper, UPSTREAM, payload=request, ts=t + 10_000)
        agent.event("receive", UPSTREAM, payload=request, ts=t + 20_000)
        if stuck(n):
            continue
        agent.event("send", UPSTREAM, helper, payload=(ref, n), ts=t + 30_000)
        agent.event("receive", helper, payload=(ref, n), ts=t + 40_000)
        agent.event("send", helper, GATEWAY, payload=(Atom("reply"), n), ts=t + 50_000)
        agent.event("exit", helper, payload=Atom("normal"), ts=t + 60_000)


def test_helpers_that_never_get_their_answer_leak():
    causes = process_leaks(_session(lambda a: _helpers(a, 200, 20, lambda n: n % 4 == 0)).facts)
    assert [c.kind for c in causes] == ["process_leak"]
    text = causes[0].summary
    assert text.startswith("gateway leaks processes: of the 200 it spawned running "
                           ":gateway.await_upstream/2, 150 finished")
    assert "last sent {:lookup, _, _, _} to upstream" in text
    assert "an answer that never comes" in text and "forever" in text
    assert causes[0].processes == ["gateway"]


def test_helpers_that_all_finish_are_no_leak():
    assert process_leaks(_session(lambda a: _helpers(a, 200, 20, lambda n: False)).facts) == []


def test_long_lived_workers_started_together_are_no_leak():
    # a pool: 25 workers started at once that live on, and short jobs after them
    assert process_leaks(_session(lambda a: _helpers(a, 200, 20, lambda n: n < 25)).facts) == []


def _monitors(agent, rounds, demonitor):
    targets = [Pid(Atom(NODE), 700 + n, 0, 7) for n in range(10)]
    k = 0
    for r in range(rounds):
        for target in targets:
            ref = Reference(Atom(NODE), 7, (k, 9, 9))
            t = k * MS
            agent.event("monitor", GATEWAY, target, payload=(ref, target), ts=t)
            if demonitor:
                agent.event("demonitor", GATEWAY, target, payload=ref, ts=t + 500_000)
            k += 1


def test_a_monitor_per_request_never_removed_leaks():
    causes = monitor_leaks(_session(lambda a: _monitors(a, 30, demonitor=False)).facts)
    assert [c.kind for c in causes] == ["monitor_leak"]
    text = causes[0].summary
    assert text.startswith("gateway leaks monitors: it made 300 monitors in 0.3 s on only 10 "
                           "processes and removed none of them")
    assert "about 30 per process it watches" in text and "demonitor" in text


def test_monitors_released_after_use_are_no_leak():
    assert monitor_leaks(_session(lambda a: _monitors(a, 30, demonitor=True)).facts) == []


def test_monitors_ended_by_an_alias_reply_are_no_leak():
    # monitor(process, Server, [{alias, reply_demonitor}]) per request: the reply to
    # the alias ends the monitor, and no demonitor shows it
    def build(agent):
        for k in range(300):
            ref = Reference(Atom(NODE), 7, (k, 9, 9))
            agent.event("monitor", GATEWAY, UPSTREAM, payload=(ref, UPSTREAM), ts=k * MS)
            agent.event("send", GATEWAY, UPSTREAM, payload=(Atom("lookup"), ref, k),
                        ts=k * MS + 1000)
            agent.event("receive", GATEWAY, payload=(ref, (Atom("city"), k)), ts=k * MS + 5000)
    assert monitor_leaks(_session(build).facts) == []
