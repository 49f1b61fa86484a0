"""Sentences a careful reader would trip on (issue 33, item 9): one number where a
range has one, "under 1 us" rather than "about 0 us", a deadlock that says its own
servers died, a mailbox that "died with it" only when something was in it."""

from __future__ import annotations

import pandas as pd

from fake_agent import A, B, C, MS, NODE, FakeAgent, demo_recording
from microscope_jupyter.analysis.backlog import _duration, _slowest_shapes
from microscope_jupyter.beam.terms import Atom, Pid
from microscope_jupyter.saved import OfflineSession
from microscope_jupyter.store.event_store import EventStore

UPDATE = (Atom("update"), 1)


def _handled(ms):
    return pd.DataFrame({"callback": ["handle_info"] * len(ms), "message": [UPDATE] * len(ms),
                         "duration_us": [m * 1000 for m in ms], "seq": range(len(ms))})


def test_a_range_of_one_value_is_one_number():
    text, _ = _slowest_shapes(_handled([0.5, 0.5, 251.2, 0.5, 0.5, 250.9]))
    assert "every 3rd took 251 ms, the rest about 0.5 ms" in text and "251-251" not in text
    text, _ = _slowest_shapes(_handled([0.5, 0.5, 240.0, 0.5, 0.5, 260.0]))
    assert "took 240-260 ms" in text


def test_sub_microsecond_is_under_1_us():
    assert _duration(0.0002) == "under 1 us"
    assert _duration(0.004) == "4 us" and _duration(0.25) == "0.2 ms"
    text, _ = _slowest_shapes(_handled([0.0003, 0.0003, 0.0003, 12.0, 0.0003, 0.0003]))
    assert "the rest under 1 us" in text and "about 0 us" not in text


def _gen_call(sender, tag, request):
    return (Atom("$gen_call"), (sender, tag), request)


def _deadlock(client=True):
    """left and right call each other (a cycle); client calls left, stuck in it. The
    call timeouts break it: client and left die of them, and right of left's death."""
    left, right, outside = (Pid(Atom(NODE), n, 0, 7) for n in (200, 201, 202))
    store = EventStore()
    agent = FakeAgent(store, names=[(left, Atom("left")), (right, Atom("right")),
                                    (outside, Atom("client"))])
    call = (Atom("gen_server"), Atom("call"))
    for sender, receiver, tag in ((left, right, 1), (right, left, 2)):
        agent.event("send", sender, receiver, payload=_gen_call(sender, tag, Atom("ping")))
        agent.event("receive", receiver, payload=_gen_call(sender, tag, Atom("ping")))
    if client:
        agent.event("send", outside, left, payload=_gen_call(outside, 3, Atom("hello")))
        agent.event("receive", left, payload=_gen_call(outside, 3, Atom("hello")))
        agent.event("exit", outside, ts=1000 * MS, payload=(Atom("timeout"), (
            *call, [Atom("left"), Atom("hello"), 5000])))
    timeout = (Atom("timeout"), (*call, [Atom("right"), Atom("ping"), 5000]))
    agent.event("exit", left, payload=timeout, ts=1001 * MS)
    agent.event("exit", right, payload=(timeout, (*call, [Atom("left"), Atom("ping"), 5000])),
                ts=1002 * MS)
    agent.flush()
    return OfflineSession(store, {}, None)


def _cause(session, kind):
    causes = session.explain().causes
    return causes[causes["kind"] == kind]["summary"].iloc[0]


def test_a_deadlock_says_its_own_servers_died_not_only_the_callers():
    text = _cause(_deadlock(), "deadlock")
    assert "1 caller(s) then died of the call timeout: client." in text, text
    assert "The cycle's own left died of the call timeout too." in text, text
    assert "The cycle's own right died too." in text, text
    alone = _cause(_deadlock(client=False), "deadlock")
    assert "caller(s)" not in alone
    assert "The cycle's own left died of the call timeout. The cycle's own right died too." \
        in alone, alone


def _crash(unread):
    """B takes three updates, crashes on the fourth; ``unread`` more were queued behind it."""
    def build(agent):
        for n in range(4 + unread):
            agent.event("send", A, B, payload=(Atom("update"), n))
        for n in range(4 + unread):
            agent.event("receive", B, payload=(Atom("update"), n))
        for n in range(4):
            agent.event("state", B, payload=((Atom("update"), n), n, n + 1, Atom("noreply"),
                                             Atom("gen_server")), aux=1000)
        agent.event("exit", B, payload=(Atom("badarith"), []))
        agent.event("send", A, B, payload=(Atom("update"), 99))   # after: to a dead pid
        agent.event("send_to_dead", A, B, payload=(Atom("update"), 99))
    return demo_recording(build)


def test_messages_died_with_it_only_when_some_were_in_its_mailbox():
    assert "2 message(s) still in its mailbox died with it." in _cause(_crash(2), "crash_restart")
    assert "mailbox" not in _cause(_crash(0), "crash_restart")
