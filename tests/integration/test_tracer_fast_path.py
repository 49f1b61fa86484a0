"""The tracer's fast path writes exactly what its general path writes.

At a flood the agent's tracer takes sends and plain receives by a shorter
way (one copy of its state per event instead of two). The general way stays
the definition: the same trace messages, fed straight into two tracers (one
with ``fast_path => false``), must come out as the same events, in the same
order, with the same ids, payloads, truncations and drop counts.
"""

from __future__ import annotations

import numpy as np
import pytest

from microscope_jupyter.agent.beam_file import ensure_agent
from microscope_jupyter.store.schema import HEADER_DTYPE, KIND_CODES

# A mix of what a tracer meets: sends to pids, names, {Name, Node} and
# aliases, plain receives, fired timeouts, monitor 'DOWN's, the agent's own
# traffic, payloads over the limit, pids first seen mid-stream, and
# lifecycle events; every event's time is its own, fixed in the message.
MESSAGES = r"""
Pids = [spawn(fun() -> receive stop -> ok end end) || _ <- lists:seq(1, 9)],
Base = erlang:monotonic_time(),
Pick = fun(I) -> lists:nth(I rem length(Pids) + 1, Pids) end,
Msg = fun(I, Ts) ->
    P = Pick(I), Q = Pick(I * 7 + 3),
    case I rem 17 of
        0 -> {trace_ts, P, send, {big, lists:seq(1, 40)}, Q, Ts};
        1 -> {trace_ts, P, 'receive', {big, lists:seq(1, 40)}, Ts};
        2 -> {trace_ts, P, send, hello, some_registered_name, Ts};
        3 -> {trace_ts, P, send, {call, I}, {some_name, 'elsewhere@nohost'}, Ts};
        4 -> {trace_ts, P, send, {reply, I}, make_ref(), Ts};
        5 -> {trace_ts, P, 'receive', timeout, Ts};
        6 -> {trace_ts, P, 'receive', microscope_go, Ts};
        7 -> {trace_ts, P, 'receive', {'DOWN', make_ref(), process, Q, normal}, Ts};
        8 -> {trace_ts, P, 'receive', {{microscope_hook, x, y}, ok}, Ts};
        9 -> {trace_ts, P, send_to_non_existing_process, {lost, I}, Q, Ts};
        10 -> {trace_ts, P, link, Q, Ts};
        11 -> {trace_ts, P, send, <<"text, a binary">>, Q, Ts};
        12 -> {trace_ts, P, send, {'$gen_call', {hd(Pids), [alias | Base]}, {add, I}}, Q, Ts};
        13 -> {trace_ts, Q, 'receive', {'$gen_call', {hd(Pids), [alias | Base]}, {add, I - 1}}, Ts};
        _ -> case I rem 2 of
                 0 -> {trace_ts, P, send, {ping, I}, Q, Ts};
                 1 -> {trace_ts, P, 'receive', {pong, I, self()}, Ts}
             end
    end
end,
Msgs = [Msg(I, Base + I) || I <- lists:seq(1, Count)],
Collect = fun Loop(Acc) ->
    receive
        {get, From} -> From ! {batches, lists:reverse(Acc)};
        {microscope_batch, _, _, _, H, Pl, D, _, _} -> Loop([{H, Pl, D} | Acc]);
        _ -> Loop(Acc)
    end
end,
Run = fun(Fast) ->
    Sink = spawn(fun() -> Collect([]) end),
    {ok, Agent, _} = microscope_agent:start(Sink, #{procs => [hd(Pids)], state => false,
        adaptive => false, batch_events => 97, payload_limit => 64, max_rate => MaxRate,
        max_events => 10000000, shed_queue => 10000000, max_queue => 20000000,
        fast_path => Fast}),
    {ok, #{tracer := Tracer}} = microscope_agent:trace_state(Agent),
    erlang:suspend_process(Tracer),
    [Tracer ! M || M <- Msgs],
    erlang:resume_process(Tracer),
    Drained = fun W() ->
        case erlang:process_info(Tracer, message_queue_len) of
            {message_queue_len, 0} -> ok;
            _ -> timer:sleep(5), W()
        end
    end,
    Drained(),
    {ok, Stats} = microscope_agent:status(Agent),   % after everything queued before it
    {ok, _} = microscope_agent:stop(Agent),
    Sink ! {get, self()},
    receive {batches, Batches} -> {Batches, maps:get(fast, Stats)} after 10000 -> timeout end
end,
Result = {Run(true), Run(false)},
[exit(P, kill) || P <- Pids],
Result.
"""

# The sampler's rows (mailbox lengths, vitals) come by the clock, not from
# the messages fed in: left out of the comparison.
SAMPLED = {KIND_CODES["mailbox"], KIND_CODES["vitals"]}


def as_bytes(value) -> bytes:
    return value.encode("utf-8") if isinstance(value, str) else bytes(value)


def shared_receives(batches) -> int:
    """Receives whose payload is the bytes of a send earlier in their batch."""
    shared = 0
    for headers, _, _ in batches:
        rows = np.frombuffer(as_bytes(headers), dtype=HEADER_DTYPE)
        sent = set(rows["pay_off"][rows["kind"] == KIND_CODES["send"]].tolist())
        receives = rows["pay_off"][rows["kind"] == KIND_CODES["receive"]].tolist()
        shared += sum(1 for off in receives if off in sent)
    return shared


def events(batches) -> list[tuple]:
    """Every row, with ids resolved to their terms and payloads cut out."""
    terms: dict[int, object] = {0: None}
    rows = []
    for headers, payloads, defs in batches:
        terms.update((local, term) for local, term in defs)
        payloads = as_bytes(payloads)
        for h in np.frombuffer(as_bytes(headers), dtype=HEADER_DTYPE):
            if h["kind"] in SAMPLED:
                continue
            dropped = h["kind"] == KIND_CODES["dropped"]   # its time is the clock's
            payload = payloads[h["pay_off"]:h["pay_off"] + h["pay_len"]]
            rows.append((int(h["kind"]), int(h["flags"]), terms[int(h["pid"])],
                         terms[int(h["peer"])], terms[int(h["mfa"])],
                         None if dropped else int(h["ts"]), int(h["aux"]), payload))
    return rows


@pytest.mark.parametrize("max_rate", [100_000_000, 700], ids=["all kept", "rate-limited"])
def test_the_fast_path_writes_what_the_general_path_writes(session, max_rate):
    count = 6000
    ensure_agent(session._remote)
    (fast_batches, fast_count), (general_batches, general_count) = session.eval_erlang(
        MESSAGES, Count=count, MaxRate=max_rate, timeout=60)
    fast, general = events(fast_batches), events(general_batches)
    assert general_count == 0
    kinds = {row[0] for row in general}
    assert {KIND_CODES[k] for k in ("send", "receive", "timeout", "send_to_dead", "link")} <= kinds
    if max_rate > count:
        assert fast_count > count // 2                # the fast path did the bulk of the work
        assert any(row[1] for row in general)         # payloads over the limit were truncated
        assert len(general) > count * 0.8
        # a message sent and then received is kept once: the receive points at
        # the send's bytes (two pairs in every 17 messages; a batch's end
        # separates a few), whichever path wrote it
        for batches in (fast_batches, general_batches):
            assert shared_receives(batches) > 2 * count // 17 * 0.8
    else:
        dropped = [row for row in general if row[0] == KIND_CODES["dropped"]]
        assert dropped and sum(row[6] for row in dropped) >= count - 2 * max_rate
        assert 0 < fast_count < max_rate
    assert fast == general
