%%% @doc The tracer: trace messages -> limits -> batches -> the owner.
%%%
%%% ```
%%%   Tracer = spawn_opt(microscope_agent_tracer, init, [Controller, Owner, Opts],
%%%                      [link, {message_queue_data, off_heap}]),
%%%   %% the trace delivers {trace_ts, ...} here; the sampler, the hooks' report
%%%   %% table, inspect_line, the log handler and the system monitor add theirs
%%%   Owner ! {microscope_batch, Tracer, No, Events, Headers, Payloads, Defs, Seen, Dropped}
%%%   %% one every batch_events or flush_ms; a final one after {finish, ...}
%%% '''
%%%
%%% One process per trace, linked to its controller, at low priority while it
%%% keeps up. It does as little as it can: each message becomes a row
%%% (microscope_agent_events: a 40-byte header and a payload) in the batch
%%% being built, and this module decides whether and when. Limits, in the
%%% order they act: granularity (adaptive: payloads capped, then 1 in 8
%%% messages, then none, as the tracer falls behind), the event count and
%%% the rate (dropped and counted, one `dropped' row per span), the mailbox
%%% (off-heap; past shed_queue it sheds, past max_queue it stops the trace),
%%% and the connection (batches wait while it is busy, as many as hold
%%% shed_queue events, then the oldest is shed). Loss is never silent:
%%% kept + dropped = seen, always.
%%%
%%% Its state (#tr) is in microscope_agent_tracer.hrl, shared with
%%% microscope_agent_events and no one else.
-module(microscope_agent_tracer).
-include("microscope_agent.hrl").
-include("microscope_agent_tracer.hrl").

%% @private spawned by the controller
-export([init/3]).

%% While the connection to Python is busy, a send would suspend the tracer
%% and its mailbox would grow unseen. Instead batches wait, as many as hold
%% shed_queue events (at least 16): the same bound as the tracer's own
%% mailbox, so raising shed_queue lets a flood wait out a slow notebook
%% instead of shedding. Beyond, the oldest is shed and counted like any
%% other drop.
-define(MIN_PENDING, 16).

init(Controller, Owner, Opts) ->
    process_flag(priority, low),
    Now = erlang:monotonic_time(),
    T = #tr{controller = Controller, owner = Owner,
                    batch_events = maps:get(batch_events, Opts),
                    flush_ms = maps:get(flush_ms, Opts),
                    payload_limit = maps:get(payload_limit, Opts),
                    full_payload_limit = maps:get(payload_limit, Opts),
                    sample = maps:get(sample, Opts, 1),
                    adaptive = maps:get(adaptive, Opts, true),
                    lifecycle = maps:get(lifecycle, Opts),
                    track_monitors = maps:get(track_monitors, Opts, false),
                    max_events = maps:get(max_events, Opts),
                    max_rate = maps:get(max_rate, Opts),
                    shed_queue = maps:get(shed_queue, Opts),
                    max_queue = maps:get(max_queue, Opts),
                    stop_flag = maps:get(stop_flag, Opts),
                    hook_overhead = maps:get(hook_overhead, Opts, 0),
                    reports = maps:get(reports, Opts),
                    reports_active = maps:get(state, Opts),
                    last_ts = Now,
                    report_drops = maps:get(report_drops, Opts),
                    window_start = Now, last_flush = Now, started = Now,
                    monitor_check_at = Now,
                    report_lag = erlang:convert_time_unit(1000, microsecond, native),
                    ring = maps:get(ring, Opts, false),
                    triggers = maps:get(triggers, Opts, #{}),
                    watch = microscope_agent_flight:watched(maps:get(triggers, Opts, #{})),
                    second = erlang:convert_time_unit(1, second, native),
                    fast_path = maps:get(fast_path, Opts, true)},
    loop(case maps:get(level, Opts, 0) of
             0 -> T;
             Level -> set_level(Level, T)
         end).

loop(T = #tr{flush_ms = FlushMs}) ->
    receive
        {finish, From, Ref, Reason, StopTs} ->
            finish(T, From, Ref, Reason, StopTs);
        {stats, From, Ref} ->
            From ! {Ref, stats(T, running)},
            loop(T);
        microscope_flush ->
            loop(flush(T#tr{flush_timer = false}));
        {microscope_load, PerMille} ->
            loop(T#tr{load = PerMille});
        {trace_ts, _, call, {erlang, demonitor, [Ref | _]}, _}
          when not is_map_key(Ref, T#tr.monitors) ->
            %% Every gen call ends by removing its own monitor: the commonest
            %% message here that is no event, so it takes the shortest path.
            loop(T);
        Msg ->
            loop(handle(Msg, T))
    after FlushMs ->
        %% Quiet: a chance to step granularity back up with no event to prompt it.
        {message_queue_len, Len} = erlang:process_info(self(), message_queue_len),
        loop(flush(check_monitors(Len, regulate(Len, T))))
    end.

%% The trace ends at StopTs: what the traced processes did before it is
%% encoded (for a bounded time: 300 ms, plus 3 us for each message queued at
%% the stop, at most 10 s; the rest is counted as dropped), what reached us
%% from after it (a hook that ran on) is no part of the recording. The queue
%% is bounded by shed_queue while tracing, so the drain is too.
-define(FINISH_BUDGET_MS, 300).
-define(FINISH_MAX_MS, 10000).
finish(T, From, Ref, Reason, StopTs) ->
    %% The stop's drain is bounded by its budget, not stretched by a busy node.
    process_flag(priority, normal),
    {message_queue_len, Queued} = erlang:process_info(self(), message_queue_len),
    Budget = min(?FINISH_MAX_MS, ?FINISH_BUDGET_MS + Queued * 3 div 1000),
    Deadline = erlang:monotonic_time() + erlang:convert_time_unit(Budget, millisecond, native),
    T0 = drain_after_stop(T#tr{stopped = true}, StopTs, Deadline),
    T1 = take_reports(T0, StopTs, fun encode_counted/2),
    %% No shedding from here on: the last drop span is written, so
    %% everything left goes out, waiting for the connection if it must.
    T2 = flush_all(enqueue_batch(T1)),
    From ! {Ref, stats(T2, Reason)}.

stats(T, State) ->
    #{state => State, seen => T#tr.seen, kept => T#tr.kept, dropped => T#tr.dropped,
      batches => T#tr.batches, sent => T#tr.sent, level => T#tr.level, load => T#tr.load,
      fast => T#tr.fast}.

%% FAST PATH: at a flood nearly every message is a send or a plain receive
%% taken at level 0, with no hook reports to interleave, no drop span open,
%% no trigger fired and the rate window current. For those, fast/7 checks
%% the limits and microscope_agent_events:fast/6 writes the very event
%% general/2 would, with one copy of the (large) #tr record instead of two
%% and none of the intermediate tuples: the tracer's cost per event is most
%% of what tracing costs a saturated node. Anything else goes the general
%% way, which stays the definition; a test runs the same messages through
%% both (fast_path => false) and compares the batches.
handle({trace_ts, P, send, Msg, To, Ts} = M, T) when is_reference(To) ->
    %% To an alias (a gen call's reply): no peer; the receive names the receiver.
    fast(send, P, none, Msg, Ts, M, T);
handle({trace_ts, P, send, Msg, To, Ts} = M, T) ->
    fast(send, P, To, Msg, Ts, M, T);
handle({trace_ts, P, 'receive', Msg, Ts} = M, T) ->
    case Msg of
        timeout -> general(M, T);
        microscope_go -> general(M, T);
        {'DOWN', _, _, _, _} -> general(M, T);
        _ -> fast('receive', P, none, Msg, Ts, M, T)
    end;
handle(M, T) ->
    general(M, T).

fast(Dir, P, Peer, Msg, Ts, M, T = #tr{fast_path = true, reports_active = false, level = 0,
                                       sample = 1, stopped = false, drop_since = none,
                                       fired = [], kept = Kept, max_events = Max,
                                       window_kept = WindowKept, max_rate = Rate,
                                       in_batch = N})
  when Kept < Max, Kept - WindowKept < Rate, N > 0 ->
    %% The event's own time says whether the rate window may be due to roll
    %% (a clock read per event costs as much as the encoding); general/2
    %% rolls it, and only general/2 ever drops, by the clock.
    case Ts - T#tr.window_start >= T#tr.second of
        true ->
            general(M, T);
        false ->
            case microscope_agent_events:fast(Dir, P, Peer, Msg, Ts, T) of
                general -> general(M, T);
                T1 -> maybe_flush(periodic_checks(T1))
            end
    end;
fast(_, _, _, _, _, M, T) ->
    general(M, T).

%% The path every other trace message takes: it copies the (large) #tr record
%% once for the event it adds and once for the counts, no more; the rate
%% window and the periodic checks read counts rather than keep their own.
general(Msg, T0) ->
    T = reports_before(Msg, T0, fun handle/2),
    %% What the granularity leaves out goes first, before admit would close
    %% the drop span: a run of them is one span, one dropped-count row.
    case thin(Msg, T) of
        {drop, T1} ->
            periodic_checks(count_drop(T1#tr{seen = T1#tr.seen + 1}));
        {keep, T1} ->
            case admit(T1) of
                {keep, T2} ->
                    maybe_flush(periodic_checks(encode_kept(Msg, T2)));
                {drop, T2} ->
                    periodic_checks(remember_state(Msg, T2#tr{seen = T2#tr.seen + 1}))
            end
    end.

%% GRANULARITY: how much the tracer keeps, stepped down as it falls behind
%% (its mailbox passes a quarter of shed_queue) and back up as it catches
%% up (under a fortieth), each step an event (K_GRANULARITY, aux = level):
%%   0  everything
%%   1  payloads capped at 256 bytes
%%   2  1 in 8 messages (sends and receives); lifecycle and state events all
%%   3  no messages, only lifecycle and state events: messages are counted
%% What a level leaves out is counted as dropped, in drop spans, so kept +
%% dropped = seen holds and the store knows which spans are complete.
%% sample => N keeps 1 in N messages at every level (N = 1: all).
-define(CAPPED_PAYLOAD, 256).

thin(Msg, T = #tr{level = Level, sample = Sample}) when Level >= 2; Sample > 1 ->
    case is_message(Msg) of
        false -> {keep, T};
        true when Level >= 3 -> {drop, T};
        true ->
            Every = case Level of 2 -> max(Sample, 8); _ -> Sample end,
            N = T#tr.sample_n + 1,
            case N >= Every of
                true -> {keep, T#tr{sample_n = 0}};
                false -> {drop, T#tr{sample_n = N}}
            end
    end;
thin(_, T) ->
    {keep, T}.

is_message({trace_ts, _, Dir, _, _}) -> Dir =:= 'receive';
is_message({trace_ts, _, Dir, _, _, _}) -> Dir =:= send orelse Dir =:= send_to_non_existing_process;
is_message(_) -> false.

%% One step toward what the backlog asks for, at most, per periodic check;
%% down at once, up only after half a second at a level (no flapping). With
%% the schedulers busy (BUSY_PERMILLE) the tracer steps down sooner (a tenth
%% of shed_queue behind) and does not step up: the node's work comes first.
-define(BUSY_PERMILLE, 950).
regulate(Len, T = #tr{adaptive = true, level = Level, shed_queue = Shed, load = Load}) ->
    Busy = Load >= ?BUSY_PERMILLE,
    if
        Len >= Shed div 4, Level < 3 -> set_level(Level + 1, T);
        Busy, Len >= Shed div 10, Level < 3 -> set_level(Level + 1, T);
        Len =< Shed div 40, Level > 0, not Busy ->
            Settled = erlang:monotonic_time() - T#tr.level_at
                >= erlang:convert_time_unit(500, millisecond, native),
            case Settled of
                true -> set_level(Level - 1, T);
                false -> T
            end;
        true -> T
    end;
regulate(_, T) ->
    T.

set_level(Level, T = #tr{full_payload_limit = Full}) ->
    Limit = case Level of 0 -> Full; _ -> min(Full, ?CAPPED_PAYLOAD) end,
    Now = erlang:monotonic_time(),
    {message_queue_len, Queue} = erlang:process_info(self(), message_queue_len),
    %% why: the tracer's backlog and the schedulers' load at the step
    Why = term_to_binary(#{queue => Queue, load_permille => T#tr.load}, [{minor_version, 2}]),
    microscope_agent_events:granularity(Now, Level, Why,
        T#tr{level = Level, level_at = Now, payload_limit = Limit, sample_n = 0,
             last_sent = none}).

%% Before a trace message is encoded, the hooks' reports from before it: a
%% callback lands after the receive it handled and before the exit it led to.
%% Up to a little before the message's time (report_lag): trace messages of
%% different processes reach us slightly out of time order, and a callback
%% reported ahead of the receive it handled would take a lower seq.
reports_before({trace_ts, _, _, _, Ts}, T = #tr{reports_active = true, report_lag = Lag},
               Handle) ->
    take_reports(T, Ts - 1 - Lag, Handle);
reports_before({trace_ts, _, _, _, _, Ts}, T = #tr{reports_active = true, report_lag = Lag},
               Handle) ->
    take_reports(T, Ts - 1 - Lag, Handle);
reports_before(_, T, _) ->
    T.

encode_kept(Msg, T1) ->
    case microscope_agent_events:encode(Msg, T1) of
        skip -> T1;
        T3 ->
            %% Most messages make one event; a monitor call makes none until
            %% its return, a 'DOWN' makes two. Count events, so
            %% kept + dropped = seen holds.
            Added = T3#tr.in_batch - T1#tr.in_batch,
            T3#tr{kept = T3#tr.kept + Added, seen = T3#tr.seen + Added}
    end.

%% At the stop: encoded whatever the limits (the events happened inside the
%% trace), but no more than max_events, and in order with the hooks' reports.
encode_counted(Msg, T0) ->
    T = reports_before(Msg, T0, fun encode_counted/2),
    case T#tr.kept >= T#tr.max_events of
        true -> count_drop(T#tr{seen = T#tr.seen + 1});
        false -> encode_kept(Msg, close_drop_span(T))
    end.

%% A dropped state event still moves the process's state on, so the next
%% kept one is rebuilt from the right base (and marked as following a gap).
remember_state(Msg, T) when element(1, Msg) =:= microscope_state;
                            element(1, Msg) =:= microscope_base ->
    microscope_agent_events:remember(Msg, T);
remember_state(_, T) ->
    T.

%% Rate and count limits. Dropped events are counted, and a dropped span is
%% written as one `dropped' event when it ends.
admit(T = #tr{stopped = true}) ->
    {drop, count_drop(T)};
admit(T = #tr{kept = Kept, max_events = Max}) when Kept >= Max ->
    T#tr.controller ! {limit, max_events},
    {drop, count_drop(T#tr{stopped = true})};
admit(T0) ->
    Now = erlang:monotonic_time(),
    T = case Now - T0#tr.window_start >= T0#tr.second of
            true -> T0#tr{window_start = Now, window_kept = T0#tr.kept};
            false -> T0
        end,
    case T#tr.kept - T#tr.window_kept >= T#tr.max_rate of
        true -> {drop, count_drop(T)};
        false -> {keep, close_drop_span(T)}
    end.

count_drop(T = #tr{drop_since = none}) ->
    T#tr{dropped = T#tr.dropped + 1, drop_since = {erlang:monotonic_time(), 1}};
count_drop(T = #tr{drop_since = {Since, N}}) ->
    T#tr{dropped = T#tr.dropped + 1, drop_since = {Since, N + 1}}.

close_drop_span(T = #tr{drop_since = none}) -> T;
close_drop_span(T = #tr{drop_since = {Since, N}}) ->
    microscope_agent_events:dropped(Since, N, T#tr{drop_since = none}).

%% Every 256 events: is our mailbox running away? Shed, or stop.
periodic_checks(T = #tr{seen = Seen, check = C}) when Seen bsr 8 =:= C ->
    T;
periodic_checks(T0 = #tr{stop_flag = Flag}) ->
    T = T0#tr{check = T0#tr.seen bsr 8},
    case atomics:get(Flag, 1) of
        1 ->
            %% The controller is stopping us: take its request ahead of the backlog.
            receive {finish, From, Ref, Reason, StopTs} ->
                finish(T, From, Ref, Reason, StopTs),
                exit(normal)
            after 0 -> ok
            end;
        0 -> ok
    end,
    {message_queue_len, Len} = erlang:process_info(self(), message_queue_len),
    prioritise(Len, check_monitors(Len, T), T#tr.shed_queue).

%% Are the monitors we track still there (microscope_agent_events:check_monitors/1)?
%% Checked only with nothing queued here, so what a check finds is no older
%% than the trace messages already written, and at most every
%% MONITOR_CHECK_MS. Each end it writes is an event, counted as kept.
-define(MONITOR_CHECK_MS, 200).
check_monitors(0, T = #tr{stopped = false, monitors = M, monitor_suspects = S})
  when map_size(M) > 0; map_size(S) > 0 ->
    Now = erlang:monotonic_time(),
    case Now >= T#tr.monitor_check_at of
        true ->
            Next = Now + erlang:convert_time_unit(?MONITOR_CHECK_MS, millisecond, native),
            T1 = microscope_agent_events:check_monitors(T#tr{monitor_check_at = Next}),
            Added = T1#tr.in_batch - T#tr.in_batch,
            T1#tr{kept = T1#tr.kept + Added, seen = T1#tr.seen + Added};
        false ->
            T
    end;
check_monitors(_, T) ->
    T.

%% PRIORITY: the node's own work comes first. While the tracer keeps up it
%% runs at low priority, so a traced process sharing its scheduler is never
%% kept waiting behind a tracer's time slice (measured: a ping-pong flood ran
%% ~10% slower beside a normal-priority tracer than beside a null one). Once
%% it falls behind (a tenth of shed_queue) it takes a normal share, so that
%% regulating and shedding its backlog cannot be starved by a busy node, and
%% goes back down once caught up (a fortieth). The stop's drain runs normal.
prioritise(Len, T = #tr{priority = low}, Shed) when Len >= Shed div 10 ->
    process_flag(priority, normal),
    limit_backlog(Len, T#tr{priority = normal});
prioritise(Len, T = #tr{priority = normal}, Shed) when Len =< Shed div 40 ->
    process_flag(priority, low),
    limit_backlog(Len, T#tr{priority = low});
prioritise(Len, T, _) ->
    limit_backlog(Len, T).

limit_backlog(Len, T) ->
    if
        Len >= T#tr.max_queue, not T#tr.stopped ->
            T#tr.controller ! {limit, overload},
            checked(shed(T#tr{stopped = true}));
        Len >= T#tr.shed_queue ->
            checked(shed(regulate(Len, T)));
        true ->
            regulate(Len, T)
    end.

checked(T) -> T#tr{check = T#tr.seen bsr 8}.

%% Discard what is queued now, counting it; a trace message costs one
%% receive here instead of an encode and a network send.
shed(T) ->
    {message_queue_len, Len} = erlang:process_info(self(), message_queue_len),
    shed(Len div 2, T).

shed(0, T) -> T;
shed(N, T) ->
    receive
        Msg when element(1, Msg) =:= trace_ts; element(1, Msg) =:= monitor;
                 element(1, Msg) =:= microscope_log ->
            shed(N - 1, count_drop(T#tr{seen = T#tr.seen + 1}))
    after 0 -> T
    end.

drain_after_stop(T, StopTs, Deadline) ->
    receive
        {finish, _, _, _, _} ->
            drain_after_stop(T, StopTs, Deadline);
        Msg when is_tuple(Msg) ->
            case event_ts(Msg) of
                Ts when is_integer(Ts), Ts > StopTs ->
                    drain_after_stop(T, StopTs, Deadline);
                none ->
                    drain_after_stop(T, StopTs, Deadline);
                _ ->
                    case erlang:monotonic_time() < Deadline of
                        true -> drain_after_stop(encode_counted(Msg, T), StopTs, Deadline);
                        false -> drain_after_stop(count_drop(T#tr{seen = T#tr.seen + 1}), StopTs,
                                                  Deadline)
                    end
            end;
        _ ->
            drain_after_stop(T, StopTs, Deadline)
    after 0 -> close_drop_span(T)
    end.

%% When a queued message happened; none for what is no event.
event_ts(Msg) when element(1, Msg) =:= trace_ts -> element(tuple_size(Msg), Msg);
event_ts({microscope_mailbox, _, _, Ts}) -> Ts;
event_ts({microscope_vitals, _, _, _, _, _, Ts}) -> Ts;
event_ts({microscope_hook, _, _, Ts}) -> Ts;
event_ts({microscope_down, _, _, Ts}) -> Ts;
event_ts({microscope_calls, _, _, Ts}) -> Ts;
event_ts({microscope_line, _, Ts, _, _, _, _, _}) -> Ts;
event_ts({microscope_log, _, Ts, _, _, _, _, _}) -> Ts;
event_ts({monitor, _, _, _}) -> 0;
event_ts(_) -> none.

maybe_flush(T = #tr{fired = [_ | _] = Fired, owner = Ring}) ->
    %% Cleared before the flush: the hook reports it takes pass through here again.
    T1 = flush(T#tr{fired = []}),
    [Ring ! {microscope_trigger, self(), Why, Ts} || {Why, Ts} <- lists:reverse(Fired)],
    T1;
maybe_flush(T = #tr{in_batch = N, batch_events = Max}) when N >= Max ->
    flush(T);
maybe_flush(T = #tr{in_batch = N}) when N band 63 =:= 0 ->
    %% Time-based flush while events keep coming.
    Now = erlang:monotonic_time(),
    case Now - T#tr.last_flush >= erlang:convert_time_unit(T#tr.flush_ms, millisecond, native) of
        true -> flush(T);
        false -> T
    end;
maybe_flush(T) ->
    T.

flush(T) ->
    send_pending((enqueue_batch(take_reports(T)))#tr{last_flush = erlang:monotonic_time()}).

%% The hooks' reports up to the newest trace message handled (all of them
%% when our mailbox is empty), so a callback never lands ahead of the
%% receive it handled. Each goes through the limits like a trace message.
take_reports(T) ->
    {message_queue_len, Queued} = erlang:process_info(self(), message_queue_len),
    Until = case Queued of
                0 -> erlang:monotonic_time();
                _ -> T#tr.last_ts - T#tr.report_lag
            end,
    take_reports(T, Until, fun handle/2).

take_reports(T = #tr{reports = Reports, report_drops = Drops}, Until, Handle) ->
    Dropped = counters:get(Drops, 1) - T#tr.drops_counted,
    T1 = case Dropped of
             0 -> T;
             _ -> readd_drops(Dropped, T#tr{drops_counted = T#tr.drops_counted + Dropped,
                                            dropped = T#tr.dropped + Dropped,
                                            seen = T#tr.seen + Dropped})
         end,
    take_reports_until(ets:first(Reports), Reports, Until, Handle, T1).

take_reports_until({Ts, _, _} = Key, Reports, Until, Handle, T) when Ts =< Until ->
    T1 = case ets:take(Reports, Key) of
             [Report] -> Handle(microscope_agent_state:report_message(Report), T);
             [] -> T
         end,
    take_reports_until(ets:first(Reports), Reports, Until, Handle, T1);
take_reports_until(_, _, _, _, T) ->
    T.

%% The batch being built joins the ones waiting to be sent.
enqueue_batch(T = #tr{in_batch = 0, defs = []}) ->
    T;
enqueue_batch(T) ->
    Batch = #{no => T#tr.batches, events => T#tr.in_batch,
              headers => list_to_binary(lists:reverse(T#tr.headers)),
              payloads => list_to_binary(lists:reverse(T#tr.payloads)),
              defs => lists:reverse(T#tr.defs)},
    Fresh = case T#tr.ring of
                true -> T#tr{intern = #{}, next_id = 1};
                false -> T
            end,
    Fresh#tr{headers = [], payloads = [], pay_off = 0, in_batch = 0, defs = [], last_sent = none,
             batches = T#tr.batches + 1, pending = T#tr.pending ++ [Batch]}.

batch_message(B, T) ->
    {microscope_batch, self(), maps:get(no, B), maps:get(events, B), maps:get(headers, B),
     maps:get(payloads, B), maps:get(defs, B), T#tr.seen, T#tr.dropped}.

send_pending(T = #tr{pending = []}) ->
    T;
send_pending(T = #tr{owner = Owner, pending = [B | Rest]}) ->
    case erlang:send(Owner, batch_message(B, T), [nosuspend]) of
        ok -> send_pending(T#tr{pending = Rest, sent = T#tr.sent + 1});
        nosuspend -> shed_pending(T)
    end.

%% The oldest waiting batch goes: its events count as dropped, its id
%% definitions move to the next batch (later events refer to them), and the
%% dropped-count rows it carried are written again.
shed_pending(T = #tr{pending = Pending, shed_queue = Shed, batch_events = Size}) ->
    case length(Pending) =< max(?MIN_PENDING, Shed div Size) of
        true -> T;
        false -> shed_oldest(T)
    end.

shed_oldest(T = #tr{pending = [Oldest, Next | Rest]}) ->
    %% Lost: its events from trace messages (kept until now, dropped from
    %% now); its dropped-count rows were counted already and only need
    %% writing again.
    Headers = maps:get(headers, Oldest),
    Counts = microscope_agent_events:dropped_counts(Headers),
    Lost = maps:get(events, Oldest) - length(Counts)
        - microscope_agent_events:granularity_rows(Headers),
    Next1 = Next#{defs := maps:get(defs, Oldest) ++ maps:get(defs, Next)},
    T1 = T#tr{pending = [Next1 | Rest], kept = T#tr.kept - Lost,
              dropped = T#tr.dropped + Lost},
    shed_pending(readd_drops(Lost + lists:sum(Counts), T1)).

readd_drops(0, T) -> T;
readd_drops(N, T = #tr{drop_since = none}) ->
    T#tr{drop_since = {erlang:monotonic_time(), N}};
readd_drops(N, T = #tr{drop_since = {Since, M}}) ->
    T#tr{drop_since = {Since, M + N}}.

%% At the end everything still waiting goes out, however long it takes.
flush_all(T = #tr{owner = Owner, pending = Pending}) ->
    [erlang:send(Owner, batch_message(B, T)) || B <- Pending],
    T#tr{pending = [], sent = T#tr.sent + length(Pending)}.
