"""Messages no receive clause takes, and a receive that scans a long queue
(analysis/selective_receive.py)."""

from __future__ import annotations

from fake_agent import MS, NODE, FakeAgent
from microscope_jupyter.analysis.selective_receive import mailbox_scans, unmatched_messages
from microscope_jupyter.beam.terms import Atom, Pid, Reference
from microscope_jupyter.saved import OfflineSession
from microscope_jupyter.store.event_store import EventStore

AGG, OLD, NEW = (Pid(Atom(NODE), n, 0, 7) for n in (900, 901, 902))
GATEWAY, ENCODER = Pid(Atom(NODE), 910, 0, 7), Pid(Atom(NODE), 911, 0, 7)
GS, NOREPLY = Atom("gen_server"), Atom("noreply")


def _session(build) -> OfflineSession:
    store = EventStore()
    agent = FakeAgent(store, names=[(AGG, Atom("aggregator")), (OLD, Atom("gw_old")),
                                    (NEW, Atom("gw_new")), (GATEWAY, Atom("gateway")),
                                    (ENCODER, Atom("encoder"))])
    build(agent)
    agent.flush()
    return OfflineSession(store, {}, None)


def _readings(new_format_kept: bool):
    """Two gateways send readings every 10 ms for 3 s, the old one two at a time; the
    new one's carry a fourth element. The aggregator's queue, sampled every 100 ms,
    grows by one per new reading when no clause takes them, else by one per 10 of them
    (it falls behind)."""
    def build(agent):
        queued = 0
        for n in range(300):
            t = n * 10 * MS
            for gw, reading in ((OLD, (Atom("reading"), 1, n)), (OLD, (Atom("reading"), 3, n)),
                                (NEW, (Atom("reading"), 2, n, {Atom("unit"): Atom("c")}))):
                agent.event("send", gw, AGG, payload=reading, ts=t)
                agent.event("receive", AGG, payload=reading, ts=t + 1000)
            queued += 0.1 * 3 if new_format_kept else 1
            if n % 10 == 0:
                agent.event("mailbox", AGG, aux=int(queued), ts=t + 5000)
    return build


def test_messages_no_clause_matches_pile_up():
    causes = unmatched_messages(_session(_readings(new_format_kept=False)).facts)
    assert [c.kind for c in causes] == ["unmatched_messages"]
    text = causes[0].summary
    assert text.startswith("The mailbox of aggregator grew from 1 to 291 messages")
    assert "just as many as the 290 {:reading, _, _, _} messages" in text
    assert "unmatched" in text and "never consumed" in text
    assert "{:reading, _, _, _} is a 4-tuple where the {:reading, _, _} it does take has 3" in text
    assert "They all come from gw_new." in text


def test_a_consumer_falling_behind_is_no_unmatched_shape():
    assert unmatched_messages(_session(_readings(new_format_kept=True)).facts) == []


def _burst(reply_with_ref: bool, base_us: int = 5, per_queued: float = 0.05):
    """A burst of 3000 publishes drains over 3 s, while one more comes in every 10th
    callback; each callback asks the encoder and waits for its answer inside the
    callback, longer the longer the queue. Its answer is tagged with the sequence
    number (a scan), or is a reply to a fresh reference, which the runtime finds
    without a scan: the slowdown is then not the receive's doing."""
    def build(agent):
        burst, live = 3000, 300
        for n in range(burst):
            agent.event("receive", GATEWAY, payload=(Atom("$gen_cast"), (Atom("publish"), n)),
                        ts=n * 1000)
        t = 10 * MS
        for n in range(burst + live):
            if n < burst and n % 10 == 0:
                cast = (Atom("$gen_cast"), (Atom("publish"), burst + n // 10))
                agent.event("receive", GATEWAY, payload=cast, ts=t)
            left = max(burst - n, 0) + min(n, burst) // 10 - max(n - burst, 0)
            took = int((base_us + left * per_queued) * 1000)
            tag = Reference(Atom(NODE), 7, (n, 1, 1)) if reply_with_ref else n
            agent.event("send", GATEWAY, ENCODER, payload=(Atom("encode"), n), ts=t + 1000)
            agent.event("receive", GATEWAY, payload=(tag, Atom("frame")) if reply_with_ref
                        else (Atom("encoded"), n, Atom("frame")), ts=t + took - 1000)
            cast = (Atom("$gen_cast"), (Atom("publish"), n))
            agent.event("state", GATEWAY, payload=(cast, n, n + 1, NOREPLY, GS), aux=took,
                        ts=t + took)
            if n % 100 == 0:
                agent.event("mailbox", GATEWAY, aux=left, ts=t + took + 1)
            t += took + 2000
    return build


def test_a_receive_in_a_callback_that_scans_the_queue():
    causes = mailbox_scans(_session(_burst(reply_with_ref=False)).facts)
    assert [c.kind for c in causes] == ["mailbox_scan"]
    text = causes[0].summary
    assert text.startswith("The callbacks of gateway get slower as its mailbox grows: "
                           "handle_cast of {:publish, _} took about")
    assert "it waits for {:encoded, _, _}" in text and "selective receive" in text
    assert "scans the whole mailbox" in text and "make_ref()" in text


def test_a_reply_to_a_fresh_reference_is_no_scan():
    assert mailbox_scans(_session(_burst(reply_with_ref=True)).facts) == []


def test_a_slow_callback_the_queue_barely_slows_is_no_scan():
    # 2 ms of work each, the queue adding a few us at most: no scan to speak of
    session = _session(_burst(reply_with_ref=False, base_us=2000, per_queued=0.001))
    assert mailbox_scans(session.facts) == []
