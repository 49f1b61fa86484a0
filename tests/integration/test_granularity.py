"""Load-adaptive granularity on a real node: a flood past the limits steps the
tracer down (capped payloads, 1 message in 8, counters only) and back up, each
step an event, with kept + dropped == seen all the way; sample= keeps 1 in N."""

from __future__ import annotations

import microscope_jupyter as mic
from nodes import wait_until

SINK = "spawn(fun L() -> receive stop -> ok; _ -> L() end end)."
FLOOD = ("[spawn(fun() -> [Sink ! {add, I} || I <- lists:seq(1, N)] end) "
         "|| _ <- lists:seq(1, K)], ok.")


def agent_counts(s, rec):
    ok, stats = s.rpc("microscope_agent", "status", [rec.agent])
    return {str(k): v for k, v in stats.items()}


def test_a_flood_steps_granularity_down_and_back_up(session):
    s = session
    sink = s.eval_erlang(SINK)
    rec = s.trace(sink, state=False, lifecycle=False, shed_queue=4000, max_queue=10_000_000,
                  max_rate=100_000_000, max_events=10_000_000)
    try:
        s.eval_erlang(FLOOD, Sink=sink, K=4, N=60_000)
        for _ in range(6):                       # during the flood, the books balance
            c = agent_counts(s, rec)
            assert c["kept"] + c["dropped"] == c["seen"], c
        wait_until(lambda: agent_counts(s, rec)["level"] > 0, timeout=30)
        wait_until(lambda: s.rpc("erlang", "process_info", [sink, mic.Atom("message_queue_len")])[1] == 0,
                   timeout=60)
        wait_until(lambda: agent_counts(s, rec)["level"] == 0, timeout=30)   # back up, with no event
    finally:
        status = rec.stop()
        s.eval_erlang("Sink ! stop.", Sink=sink)
    steps = s.events[s.events["kind"] == "granularity"]
    levels = [int(a) for a in s.store.raw().aux[steps["seq"].to_numpy()]]
    assert max(levels) >= 2 and levels[-1] == 0, levels
    assert all(abs(b - a) == 1 for a, b in zip([0] + levels, levels)), levels   # one step at a time
    assert status["dropped"] > 0 and status["events"] + status["dropped"] >= 240_000
    receives = (s.events["kind"] == "receive").sum()
    assert receives < 240_000                  # thinned, and the store says how much was left out
    assert s.store.dropped == status["dropped"]


def test_sample_keeps_one_message_in_n(session):
    s = session
    sink = s.eval_erlang(SINK)
    rec = s.trace(sink, state=False, lifecycle=False, sample=4, adaptive=False)
    try:
        s.eval_erlang("[begin Sink ! {add, I}, timer:sleep(0) end || I <- lists:seq(1, 4000)], ok.",
                      Sink=sink)
        wait_until(lambda: agent_counts(s, rec)["seen"] >= 4000)
    finally:
        status = rec.stop()
        s.eval_erlang("Sink ! stop.", Sink=sink)
    receives = int((s.events["kind"] == "receive").sum())
    assert receives == 1000, receives
    assert status["dropped"] >= 3000 and not (s.events["kind"] == "granularity").any()
