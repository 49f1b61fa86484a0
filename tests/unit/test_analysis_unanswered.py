"""Calls taken with {noreply, S} and never answered (analysis/unanswered.py)."""

from __future__ import annotations

from fake_agent import MS, NODE, FakeAgent
from microscope_jupyter.analysis.unanswered import unanswered_calls
from microscope_jupyter.beam.terms import Atom, ImproperList, Pid, Reference
from microscope_jupyter.saved import OfflineSession
from microscope_jupyter.store.event_store import EventStore

SERVER = Pid(Atom(NODE), 500, 0, 7)
USERS = [Pid(Atom(NODE), 501 + n, 0, 7) for n in range(4)]
GS, NOREPLY = Atom("gen_server"), Atom("noreply")
REPORT = (Atom("render"), Atom("q3"))


def _tag(n):
    return ImproperList((Atom("alias"),), Reference(Atom(NODE), 7, (n, 2, 3)))


def _session(build) -> OfflineSession:
    store = EventStore()
    agent = FakeAgent(store, names=[(SERVER, Atom("reports"))])
    build(agent)
    agent.event("mailbox", SERVER, aux=0, ts=3000 * MS)       # the recording runs on 3 s
    agent.flush()
    return OfflineSession(store, {}, None)


def _call(agent, n, t, before, after, *, timeout=False):
    user = USERS[n]
    call = (Atom("$gen_call"), (user, _tag(n)), REPORT)
    agent.event("send", user, SERVER, payload=call, ts=t)
    agent.event("receive", SERVER, payload=call, ts=t + 1000)
    agent.event("state", SERVER, payload=(call, before, after, NOREPLY, GS), aux=5000,
                ts=t + 10_000)
    if timeout:
        agent.event("timeout", user, ts=t + 1000 * MS)
    return call


def _coalescing(keep_the_others: bool, timeout: bool = False):
    """Four users ask for the same report at once. The first caller's From goes into
    ``rendering``; the others' too when ``keep_the_others``, else nowhere. The render's
    result answers the waiting list 40 ms later."""
    def build(agent):
        idle = {Atom("rendering"): {}}
        waiting = [(USERS[0], _tag(0))]
        state = {Atom("rendering"): {REPORT: waiting}}
        _call(agent, 0, 0, idle, state)
        for n in (1, 2, 3):
            if keep_the_others:
                grown = {Atom("rendering"): {REPORT: waiting + [(USERS[n], _tag(n))]}}
                _call(agent, n, n * 1000, state, grown, timeout=timeout)
                waiting, state = waiting + [(USERS[n], _tag(n))], grown
            else:
                _call(agent, n, n * 1000, state, state, timeout=timeout)
        for user, tag in waiting:
            agent.event("send", SERVER, user, payload=(tag, Atom("ok")), ts=40 * MS)
    return build


def test_a_noreply_that_keeps_the_from_nowhere():
    causes = unanswered_calls(_session(_coalescing(keep_the_others=False)).facts)
    assert [c.kind for c in causes] == ["no_reply"]
    text = causes[0].summary
    assert text.startswith("reports took 3 call(s) ({:render, :q3}) with handle_call returning "
                           "{:noreply, state} and never replied to them")
    assert "the From was not stored anywhere" in text
    assert "a duplicate of a request in flight" in text and "answered at seq" in text
    assert causes[0].confidence == 0.85


def test_deferred_replies_all_answered_are_no_finding():
    assert unanswered_calls(_session(_coalescing(keep_the_others=True)).facts) == []


def test_a_kept_from_unanswered_counts_once_its_caller_gave_up():
    def build(agent):
        # a blocking pop: every From kept in the waiting list, none answered yet
        state = {Atom("waiting"): []}
        for n in (1, 2):
            grown = {Atom("waiting"): state[Atom("waiting")] + [(USERS[n], _tag(n))]}
            _call(agent, n, n * 1000, state, grown, timeout=(n == 2))
            state = grown
    causes = unanswered_calls(_session(build).facts)
    assert len(causes) == 1 and causes[0].confidence == 0.6
    assert "took 1 call(s)" in causes[0].summary      # only the caller that gave up
    assert "1 had their From kept or handed on" in causes[0].summary
    assert "1 of their callers gave up at their call timeout" in causes[0].summary


def test_replies_whose_tags_end_alike_are_told_apart():
    """OTP 28's references share their last words; two deferred calls answered
    by a worker (gen_server:reply from another process) are both answered."""
    def tag(n):      # five words, the last four alike: only the first tells them apart
        return ImproperList((Atom("alias"),), Reference(Atom(NODE), 7, (n, 9, 9, 9, 0)))

    def build(agent):
        worker = Pid(Atom(NODE), 600, 0, 7)
        for n in (0, 1):
            call = (Atom("$gen_call"), (USERS[n], tag(n)), REPORT)
            agent.event("send", USERS[n], SERVER, payload=call, ts=n * MS)
            agent.event("receive", SERVER, payload=call, ts=n * MS + 1000)
            agent.event("state", SERVER, payload=(call, 1, 1, NOREPLY, GS), aux=5000,
                        ts=n * MS + 10_000)
        for n in (0, 1):
            agent.event("send", worker, USERS[n], payload=(tag(n), Atom("ok")), ts=(5 + n) * MS)

    assert unanswered_calls(_session(build).facts) == []
