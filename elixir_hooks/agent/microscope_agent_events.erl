%%% @doc What each message the tracer takes becomes: a row of the event
%%% format, a fixed-width 40-byte header and a raw term_to_binary payload,
%%% written into the batch being built.
%%%
%%% ```
%%%   <<Kind:8, Flags:8, 0:16, Pid:32/little, Peer:32/little, MFA:32/little,
%%%     Ts:64/little-signed, PayOff:32/little, PayLen:32/little, Aux:64/little-signed>>
%%%   T1 = encode({trace_ts, P, send, Msg, To, Ts}, T)    % one row (or skip, or more)
%%%   T1 = dropped(Since, Count, T)                       % a drop span's row
%%% '''
%%%
%%% Pids, names and functions are interned: defined once per trace (per
%%% batch in a flight recorder's ring) in the batch's defs, and referred to
%%% by id, so a header stays fixed-width and Python never decodes them
%%% again. Payloads are capped at payload_limit (a summary in their place,
%%% flagged). The kinds and the header are the contract with
%%% microscope_jupyter/store/schema.py, which reads headers in bulk.
%%%
%%% These are functions over the tracer's state (#tr, in
%%% microscope_agent_tracer.hrl), called from the tracer process only:
%%% microscope_agent_tracer decides whether and when (limits, batches),
%%% this module what is written. Each message costs the tracer one call
%%% here; a send or a plain receive at a flood takes fast/6, which writes
%%% and counts it with a single copy of the record.
-module(microscope_agent_events).
-include("microscope_agent.hrl").
-include("microscope_agent_tracer.hrl").

-export([encode/2, fast/6, dropped/3, granularity/4, remember/2]).
%% the batch format read back (the tracer sheds a batch, a ring pulls one)
-export([header_times/1, dropped_counts/1, granularity_rows/1]).
-export([monitor_target/1, check_monitors/1]).

-define(HEADER_BYTES, 40).

%% Event kinds: keep in step with microscope_jupyter/store/schema.py
-define(K_SPAWN, 1).
-define(K_EXIT, 2).
-define(K_LINK, 3).
-define(K_UNLINK, 4).
-define(K_REGISTER, 5).
-define(K_UNREGISTER, 6).
-define(K_SEND, 7).
-define(K_SEND_TO_DEAD, 8).
-define(K_RECEIVE, 9).
-define(K_CALL, 10).
-define(K_RETURN, 11).
-define(K_EXCEPTION, 12).
-define(K_STATE, 13).
-define(K_GC, 14).
-define(K_DROPPED, 15).
-define(K_LONG_GC, 16).
-define(K_LONG_SCHEDULE, 17).
-define(K_LARGE_HEAP, 18).
-define(K_LINE, 19).       % BeamMicroscope.inspect_line/1,2: aux is the line, payload {Label, File, Binding}
%% 19 (line) and 20 (annotation) are written on the Python side.
-define(K_MONITOR, 21).
-define(K_DEMONITOR, 22).
-define(K_TIMEOUT, 23).    % a `receive ... after' that fired: not a message
-define(K_HOOK, 24).       % a state hook changed: aux 1 installed, 0 removed, 2 the state then
-define(K_MAILBOX, 25).    % a sampled message_queue_len: aux is the length
-define(K_VITALS, 26).     % sampled memory, heap and reductions: aux is memory in bytes
-define(K_GRANULARITY, 27). % the tracer changed how much it keeps: aux is the level (GRANULARITY)
-define(K_CALL_COUNT, 28). % calls of a function since the last sample (counters level): aux is how many
-define(K_LOG, 29).        % a log event of the node (microscope_agent_log): aux is its level, 0 emergency .. 7 debug

-define(F_TRUNCATED, 1).
%% What a log row may carry beside its text (microscope_agent_log keeps each
%% term of it small).
-define(LOG_SUMMARY_BYTES, 2048).

%%%===================================================================
%%% ROWS
%%%===================================================================

%% Trace message -> header + payload, or skip (no event). Our own traffic
%% (hook requests and their replies, even those of an earlier trace that
%% reach a dead pid) is recognised by its tags, wherever it goes, and is no
%% event. Hook reports never travel as messages (microscope_agent_state).
encode({trace_ts, _, Dir, Msg, _} = M, T) when Dir =:= 'receive' ->
    case agent_traffic(Msg) of
        true -> skip;
        false -> row(M, T)
    end;
encode({trace_ts, _, Dir, Msg, _, _} = M, T)
  when Dir =:= send; Dir =:= send_to_non_existing_process ->
    case agent_traffic(Msg) of
        true -> skip;
        false -> row(M, T)
    end;
encode(M, T) ->
    row(M, T).

agent_traffic({system, {_, {microscope_hook, _, _}}, _}) -> true;
%% inspect_line to us, and our log handler from inside the process that logs
agent_traffic(Msg) when element(1, Msg) =:= microscope_line;
                        element(1, Msg) =:= microscope_log -> true;
agent_traffic({{microscope_hook, _, _}, _}) -> true;
agent_traffic(_) -> false.

row({trace_ts, P, 'receive', timeout, Ts}, T) ->
    %% A `receive ... after' that fired (Process.sleep, a gen_server timeout):
    %% no message arrived. (A message that is the bare atom `timeout' looks
    %% the same in the trace; Python pairs it with its send when it has one.)
    event(?K_TIMEOUT, P, none, none, Ts, 0, T);
row({trace_ts, _, 'receive', microscope_go, _}, _) ->
    skip;  % the start signal of an eval_traced worker
row({trace_ts, P, send, Msg, To, Ts}, T) when is_reference(To) ->
    %% A send to an alias: every gen call's reply goes to a fresh one. Interning
    %% each as a peer id would grow both id tables by one per call, forever;
    %% the alias is in the reply itself, and the receive it pairs with names
    %% the receiver.
    message(send, P, none, Ts, Msg, T);
row({trace_ts, P, send, Msg, To, Ts}, T) ->
    message(send, P, To, Ts, Msg, T);
row({trace_ts, P, send_to_non_existing_process, Msg, To, Ts}, T) ->
    payload(?K_SEND_TO_DEAD, P, To, none, Ts, 0, Msg, T);
row({trace_ts, P, 'receive', {'DOWN', Ref, process, _, _} = Msg, Ts},
             T = #tr{monitors = Monitors}) when is_map_key(Ref, Monitors) ->
    %% The watcher learns its monitor ended: aux 1 marks this end.
    T1 = payload(?K_RECEIVE, P, none, none, Ts, 0, Msg, T),
    end_monitor(P, Ref, Ts, 1, T1);
row({trace_ts, P, 'receive', Msg, Ts}, T) ->
    message('receive', P, none, Ts, Msg, T);
row({trace_ts, _, spawn, Child, _, _}, T = #tr{lifecycle = false}) ->
    T#tr.controller ! {spawned, Child},
    skip;
row({trace_ts, _, Tag, _, _}, #tr{lifecycle = false})
  when Tag =:= exit; Tag =:= link; Tag =:= unlink; Tag =:= register; Tag =:= unregister ->
    skip;
row({trace_ts, P, spawn, Child, {M, F, Args}, Ts}, T) ->
    T#tr.controller ! {spawned, Child},
    event(?K_SPAWN, P, Child, {M, F, arity(Args)}, Ts, 0, T);
row({trace_ts, P, exit, Reason, Ts}, T) ->
    T1 = payload(?K_EXIT, P, none, none, Ts, 0, Reason,
                 T#tr{states = maps:remove(P, T#tr.states)}),
    crash_trigger(P, Reason, T1);
row({trace_ts, P, link, P2, Ts}, T) ->
    event(?K_LINK, P, P2, none, Ts, 0, T);
row({trace_ts, P, unlink, P2, Ts}, T) ->
    event(?K_UNLINK, P, P2, none, Ts, 0, T);
row({trace_ts, P, register, Name, Ts}, T) ->
    event(?K_REGISTER, P, Name, none, Ts, 0, watch_name(P, Name, T));
row({trace_ts, P, unregister, Name, Ts}, T) ->
    event(?K_UNREGISTER, P, Name, none, Ts, 0, T);
row({trace_ts, P, call, {erlang, monitor, [process, Target | _]}, _}, T)
  when T#tr.track_monitors ->
    T#tr{monitor_calls = (T#tr.monitor_calls)#{P => Target}};
row({trace_ts, P, return_from, {erlang, monitor, _}, Ref, Ts}, T)
  when T#tr.track_monitors ->
    case maps:take(P, T#tr.monitor_calls) of
        {Target, Calls} ->
            Peer = case monitor_target(Target) of
                       Pid when is_pid(Pid) -> Pid;
                       _ -> none
                   end,
            Open = {Peer, P, listed_as(Target)},
            payload(?K_MONITOR, P, Peer, none, Ts, 0, {Ref, Target},
                    T#tr{monitor_calls = Calls, monitors = (T#tr.monitors)#{Ref => Open}});
        error ->
            skip
    end;
row({trace_ts, P, call, {erlang, demonitor, [Ref | _]}, Ts}, T)
  when T#tr.track_monitors ->
    case is_map_key(Ref, T#tr.monitors) of
        true -> end_monitor(P, Ref, Ts, 0, T);
        false -> skip  % a gen call's own monitor, or one older than the trace
    end;
%% A state hook writes its reports into our table from inside the traced
%% process: under modules=[":ets.insert/2"] those calls would read as the
%% app's. They, and their returns, are left out.
row({trace_ts, P, call, {ets, _, [Tab | _]}, _}, T) when Tab =:= T#tr.reports ->
    T#tr{own_calls = (T#tr.own_calls)#{P => true}};
row({trace_ts, P, return_from, {ets, _, _}, _, _}, T = #tr{own_calls = Own})
  when is_map_key(P, Own) ->
    T#tr{own_calls = maps:remove(P, Own)};
row({trace_ts, P, exception_from, {ets, _, _}, _, _}, T = #tr{own_calls = Own})
  when is_map_key(P, Own) ->
    T#tr{own_calls = maps:remove(P, Own)};
row({trace_ts, P, call, {M, F, Args}, Ts}, T) ->
    payload(?K_CALL, P, none, {M, F, arity(Args)}, Ts, 0, Args, T);
row({trace_ts, P, return_from, MFA, Ret, Ts}, T) ->
    payload(?K_RETURN, P, none, MFA, Ts, 0, Ret, T);
row({trace_ts, P, exception_from, MFA, ClassValue, Ts}, T) ->
    payload(?K_EXCEPTION, P, none, MFA, Ts, 0, ClassValue, T);
row({trace_ts, P, gc_major_end, Info, Ts}, T) ->
    payload(?K_GC, P, none, none, Ts, 1, Info, T);
row({trace_ts, P, gc_minor_end, Info, Ts}, T) ->
    payload(?K_GC, P, none, none, Ts, 0, Info, T);
row({microscope_state, P, TsIn, TsOut, Msg, Capture, Reply, Kind, N, ToolNs}, T) ->
    {Before, After} = rebuild(P, N, Capture, T),
    Changes = case Capture of
                  {changes, Cs, Complete} -> {Cs, Complete};
                  same -> {[], true};   % unchanged, by identity
                  _ -> none
              end,
    Extra = #{n => N, tool => ToolNs + T#tr.hook_overhead, changes => Changes},
    payload(?K_STATE, P, none, none, TsOut, TsOut - TsIn, {Msg, Before, After, Reply, Kind, Extra},
            T#tr{states = (T#tr.states)#{P => {N, After}}});
row({microscope_base, P, Base, Ts}, T) ->
    %% The state a hooked process had when it took our install request; the
    %% hook's own reports count from there (n = 0). Recorded too, as a hook
    %% event (aux 2) carrying it: a process that runs no callback in the
    %% recording (one waiting forever on a peer that is gone) still has a
    %% known state.
    payload(?K_HOOK, P, none, none, Ts, 2, Base, T#tr{states = (T#tr.states)#{P => {0, Base}}});
row({microscope_hook, P, How, Ts}, T) ->
    event(?K_HOOK, P, none, none, Ts, How, T);
row({microscope_down, P, Reason, Ts}, T) ->
    %% A watched (not traced) process ended: its exit, seen through a monitor.
    row({trace_ts, P, exit, Reason, Ts}, T);
row({microscope_calls, MFA, Delta, Ts}, T) ->
    event(?K_CALL_COUNT, none, none, MFA, Ts, Delta, T);
row({microscope_mailbox, P, Len, Ts}, T) ->
    mailbox_trigger(P, Len, event(?K_MAILBOX, P, none, none, Ts, Len, T));
row({microscope_vitals, P, Mem, Heap, Reds, Binary, Ts}, T) ->
    Vitals = #{memory => Mem, heap_words => Heap, reductions => Reds},
    payload(?K_VITALS, P, none, none, Ts, Mem,
            case Binary of
                false -> Vitals;  % not read this round
                _ -> Vitals#{binary_bytes => Binary}
            end, T);
row({monitor, P, _, _} = Msg, T) when is_pid(P) ->
    case microscope_agent:is_ours(P) of
        true -> skip;  % our own work is not the app's
        false ->
            case monitor_event(Msg, T) of
                skip -> skip;
                T1 -> monitor_trigger(element(3, Msg), P, T1)
            end
    end;
row({microscope_line, P, Ts, Label, {M, F, A} = MFA, File, Line, Binding}, T)
  when is_pid(P), is_integer(Ts), is_atom(M), is_atom(F), is_integer(A), is_integer(Line) ->
    payload(?K_LINE, P, none, MFA, Ts, Line, {Label, File, Binding}, T);
row({microscope_log, P, Ts, Level, MFA, Peer, Text, Summary}, T = #tr{payload_limit = Limit})
  when is_pid(P), is_integer(Ts), is_binary(Text) ->
    payload(?K_LOG, P, Peer, MFA, Ts, log_level(Level), {Level, bounded(Text, Limit), Summary}, T);
row(_Other, _T) ->
    %% spawned, getting_linked, gc_*_start, return_to ...: the other side
    %% of an event we already record, or noise.
    skip.

%%%===================================================================
%%% FAST PATH, BOOKKEEPING
%%%===================================================================

%% FAST PATH (microscope_agent_tracer:fast/7 found the limits clear): a
%% send or a plain receive, written and counted with one copy of the
%% record and none of the intermediate tuples; general when it is our own
%% traffic. It writes the very row encode/2 would (a test compares).
fast(Dir, P, Peer, Msg, Ts, T) ->
    case agent_traffic(Msg) of
        true ->
            general;
        false ->
            Kind = case Dir of send -> ?K_SEND; 'receive' -> ?K_RECEIVE end,
            {Flags, PayOff, Size, T1} = message_payload(Dir, Msg, T),
            {Pi, T2} = intern(id(P), T1),
            {Peeri, T3} = intern(id(Peer), T2),
            Header = <<Kind:8, Flags:8, 0:16, Pi:32/little, Peeri:32/little, 0:32/little,
                       Ts:64/little-signed, PayOff:32/little, Size:32/little, 0:64/little-signed>>,
            T3#tr{headers = [Header | T3#tr.headers], in_batch = T3#tr.in_batch + 1,
                  kept = T3#tr.kept + 1, seen = T3#tr.seen + 1,
                  last_ts = max(Ts, T3#tr.last_ts), fast = T3#tr.fast + 1}
    end.

%% SHARED: a message's payload. Most messages are sent and then received
%% inside the same batch (a call's request, its reply), and both events
%% carry the same bytes: the receive of the message the batch's last send
%% carried points at the send's bytes instead of encoding them again (an
%% exact match, so the bytes are the very ones it would write). It halves
%% what a call costs to encode and to keep. Offsets are the batch's, so the
%% batch's end forgets the send (enqueue_batch), as does a change of the
%% payload limit (set_level).
message_payload('receive', Msg, T = #tr{last_sent = {Msg, Flags, Off, Size}}) ->
    {Flags, Off, Size, T};
message_payload(Dir, Msg, T = #tr{pay_off = Off}) ->
    %% Atoms as UTF-8 on every release (payload/8 says why).
    Bin0 = term_to_binary(Msg, [{minor_version, 2}]),
    {Flags, Bin} = case byte_size(Bin0) =< T#tr.payload_limit of
                       true -> {0, Bin0};
                       false -> {?F_TRUNCATED, term_to_binary({'$microscope_truncated',
                                                               byte_size(Bin0)})}
                   end,
    Size = byte_size(Bin),
    T1 = T#tr{payloads = [Bin | T#tr.payloads], pay_off = Off + Size},
    case Dir of
        send -> {Flags, Off, Size, T1#tr{last_sent = {Msg, Flags, Off, Size}}};
        _ -> {Flags, Off, Size, T1}
    end.

%% A drop span's row: Count events dropped since Since (aux is the count).
dropped(Since, Count, T) ->
    add(?K_DROPPED, 0, 0, 0, 0, Since, Count, <<>>, T).

%% The tracer changed how much it keeps (aux is the level; Why a payload).
granularity(Now, Level, Why, T) ->
    add(?K_GRANULARITY, 0, 0, 0, 0, Now, Level, Why, T).

%% A dropped state event still moves the process's state on, so the next
%% kept one is rebuilt from the right base (and marked as following a gap).
remember({microscope_state, P, _, _, _, Capture, _, _, N, _}, T) ->
    {_, After} = rebuild(P, N, Capture, T),
    T#tr{states = (T#tr.states)#{P => {N, After}}};
remember({microscope_base, P, Base, _}, T) ->
    T#tr{states = (T#tr.states)#{P => {0, Base}}};
remember(_, T) ->
    T.

%%%===================================================================
%%% FLIGHT TRIGGERS, MONITORS, STATES
%%%===================================================================

%% FLIGHT triggers: what fires one is microscope_agent_flight's to say, asked
%% only on the rare events that can (and only in a recorder's trace, the one
%% with triggers). The ring is told once the event that fired has gone to it
%% (maybe_flush/1): the copy it freezes must hold it.
crash_trigger(_, _, T = #tr{triggers = Triggers}) when map_size(Triggers) =:= 0 ->
    T;
crash_trigger(P, Reason, T) ->
    fire(microscope_agent_flight:crashed(P, Reason, T#tr.triggers, T#tr.watch), T).

watch_name(_, _, T = #tr{triggers = Triggers}) when map_size(Triggers) =:= 0 ->
    T;
watch_name(P, Name, T) ->
    T#tr{watch = microscope_agent_flight:watch(P, Name, T#tr.triggers, T#tr.watch)}.

mailbox_trigger(_, _, T = #tr{triggers = Triggers}) when map_size(Triggers) =:= 0 ->
    T;
mailbox_trigger(P, Len, T) ->
    {Why, Over} = microscope_agent_flight:mailbox(P, Len, T#tr.triggers, T#tr.over),
    fire(Why, T#tr{over = Over}).

monitor_trigger(_, _, T = #tr{triggers = Triggers}) when map_size(Triggers) =:= 0 ->
    T;
monitor_trigger(What, P, T) ->
    fire(microscope_agent_flight:monitored(What, P, T#tr.triggers), T).

fire(none, T) ->
    T;
fire(Why, T) ->
    T#tr{fired = [{Why, erlang:monotonic_time()} | T#tr.fired]}.

%% The state a hook's report leads to (microscope_agent_state:rebuild/3),
%% from the last one we know of the process.
rebuild(P, N, Capture, T) ->
    microscope_agent_state:rebuild(maps:get(P, T#tr.states, none), N, Capture).

%% System monitor reports carry no timestamp: they are stamped on arrival.
%% A long_gc longer than our monitor has been set is impossible: OTP 25
%% reports the VM's uptime as the duration of a collection that began
%% before the monitor was switched on (seen at 5.8-12.3 s in processes
%% younger than that). It is left out, not shown as a pause.
monitor_event({monitor, P, long_gc, Info}, T = #tr{started = Started}) ->
    Now = erlang:monotonic_time(),
    Ms = info_value(timeout, Info),
    case Ms > erlang:convert_time_unit(Now - Started, native, millisecond) of
        true -> skip;
        false -> payload(?K_LONG_GC, P, none, none, Now, Ms, Info, T)
    end;
monitor_event({monitor, P, long_schedule, Info}, T) ->
    payload(?K_LONG_SCHEDULE, P, none, none, erlang:monotonic_time(), info_value(timeout, Info),
            Info, T);
monitor_event({monitor, P, large_heap, Info}, T) ->
    %% The figure large_heap compares with its threshold: the allocated
    %% young and old heap blocks, not the part of them in use.
    Words = info_value(heap_block_size, Info) + info_value(old_heap_block_size, Info),
    payload(?K_LARGE_HEAP, P, none, none, erlang:monotonic_time(), Words, Info, T);
monitor_event(_Other, _T) ->
    skip.

%% Who a monitor watches: a pid, or a registered name's holder (none if
%% nobody, or on another node).
monitor_target(P) when is_pid(P) -> P;
monitor_target(Name) when is_atom(Name) -> whereis(Name);
monitor_target({Name, Node}) when is_atom(Name), Node =:= node() -> whereis(Name);
monitor_target(_) -> none.

%% How: 0 demonitor/1 called, 1 a 'DOWN' received, 2 found removed by a check.
end_monitor(P, Ref, Ts, How, T) ->
    {{Peer, _, _}, Monitors} = maps:take(Ref, T#tr.monitors),
    payload(?K_DEMONITOR, P, Peer, none, Ts, How, Ref, T#tr{monitors = Monitors}).

%% How a monitor appears in its watcher's process_info(W, monitors).
listed_as(Name) when is_atom(Name) -> {process, {Name, node()}};
listed_as(Target) -> {process, Target}.

%% DEMONITORS FOUND BY CHECKING. erlang:demonitor/2 is not patterned: every
%% gen call removes its own monitor with it, and a breakpoint there cost each
%% GenServer.call ~0.5 us, a tenth of what a traced call costs (measured on
%% OTP 25; monitor/3, which every call also makes its monitor with, likewise).
%% So a monitor we track (made by monitor/2) that its watcher removes with
%% demonitor/2 (Elixir's Process.demonitor, a flush) is found gone from the
%% watcher's own list instead: its end is written when found, aux 2, its
%% time an upper bound (the tracer checks every MONITOR_CHECK_MS while any
%% are open). A missing one whose target may be dead (not a live local pid)
%% may be a 'DOWN' still on its way to us: it ends only if still open at the
%% next check. A watcher that died took its monitors with it: its exit says
%% so, and they are forgotten.
check_monitors(T = #tr{monitors = Monitors}) when map_size(Monitors) =:= 0 ->
    T#tr{monitor_suspects = #{}};
check_monitors(T0 = #tr{monitors = Monitors, monitor_suspects = Suspects}) ->
    Now = erlang:monotonic_time(),
    Open = lists:sort(maps:to_list(Monitors)),
    Listed = maps:from_list([{W, listed(W)} || W <- lists:usort([W || {_, {_, W, _}} <- Open])]),
    {Missing, _} = lists:foldl(
                     fun({Ref, {Peer, W, As}}, {Acc, L}) ->
                             case maps:get(W, L) of
                                 gone -> {[{Ref, gone} | Acc], L};
                                 #{As := N} = Counts when N > 0 ->
                                     {Acc, L#{W := Counts#{As := N - 1}}};
                                 _ -> {[{Ref, {W, Peer}} | Acc], L}
                             end
                     end, {[], Listed}, Open),
    lists:foldl(
      fun({Ref, gone}, T) ->
              T#tr{monitors = maps:remove(Ref, T#tr.monitors)};
         ({Ref, {W, Peer}}, T) ->
              case is_map_key(Ref, Suspects) orelse alive_here(Peer) of
                  true -> end_monitor(W, Ref, Now, 2, T);
                  false -> T#tr{monitor_suspects = (T#tr.monitor_suspects)#{Ref => true}}
              end
      end, T0#tr{monitor_suspects = #{}}, lists:reverse(Missing)).

%% The watcher's monitors, counted by how each is listed (it may hold
%% several on one process).
listed(W) ->
    case erlang:process_info(W, monitors) of
        {monitors, Entries} ->
            lists:foldl(fun(E, Counts) -> maps:update_with(E, fun(N) -> N + 1 end, 1, Counts) end,
                        #{}, Entries);
        undefined -> gone
    end.

alive_here(P) when is_pid(P), node(P) =:= node() -> erlang:is_process_alive(P);
alive_here(_) -> false.

info_value(Key, Info) ->
    case lists:keyfind(Key, 1, Info) of
        {Key, V} when is_integer(V) -> V;
        _ -> 0
    end.

%% Logger's levels as syslog numbers them (aux of a `log' row).
log_level(emergency) -> 0;
log_level(alert) -> 1;
log_level(critical) -> 2;
log_level(error) -> 3;
log_level(warning) -> 4;
log_level(notice) -> 5;
log_level(info) -> 6;
log_level(_) -> 7.

%% A log line's text cut to the payload limit (the granularity's cap
%% included), on a character boundary, and marked as cut.
bounded(Text, Limit) when byte_size(Text) =< Limit ->
    Text;
bounded(Text, Limit) ->
    Kept = case unicode:characters_to_binary(binary:part(Text, 0, Limit)) of
               Whole when is_binary(Whole) -> Whole;
               {_, Whole, _} -> Whole
           end,
    <<Kept/binary, "...">>.

arity(Args) when is_list(Args) -> length(Args);
arity(A) when is_integer(A) -> A.

%%%===================================================================
%%% WRITING A ROW
%%%===================================================================

payload(Kind, P, Peer, MFA, Ts, Aux, Term, T = #tr{payload_limit = Limit0}) ->
    %% A state event carries two states, a message and a reply; a log line
    %% its text (already cut to the limit) and a few small terms beside it.
    Limit = case Kind of
                ?K_STATE -> Limit0 * 8;
                ?K_LOG -> Limit0 + ?LOG_SUMMARY_BYTES;
                _ -> Limit0
            end,
    %% Atoms as UTF-8 on every release (OTP 25's default is Latin-1, 26+'s
    %% UTF-8): the same message sent on one node and received on another of a
    %% mixed cluster has the same bytes, which is how sends and receives pair.
    Bin = term_to_binary(Term, [{minor_version, 2}]),
    case byte_size(Bin) =< Limit of
        true ->
            add(Kind, 0, id(P), id(Peer), id(MFA), Ts, Aux, Bin, T);
        false ->
            Summary = term_to_binary({'$microscope_truncated', byte_size(Bin)}),
            add(Kind, ?F_TRUNCATED, id(P), id(Peer), id(MFA), Ts, Aux, Summary, T)
    end.

event(Kind, P, Peer, MFA, Ts, Aux, T) ->
    add(Kind, 0, id(P), id(Peer), id(MFA), Ts, Aux, <<>>, T).

%% Identifiers (pids, names, MFAs) are interned per trace and defined once,
%% so a header stays fixed-width and the Python side never re-decodes them.
-define(ID(X), {intern, X}).
id(none) -> 0;
id(X) -> ?ID(X).

add(Kind, Flags, P0, Peer0, MFA0, Ts, Aux, Bin, T0) ->
    Size = byte_size(Bin),
    Off = T0#tr.pay_off,
    T = case Size of
            0 -> T0;
            _ -> T0#tr{payloads = [Bin | T0#tr.payloads], pay_off = Off + Size}
        end,
    add_row(Kind, Flags, P0, Peer0, MFA0, Ts, Aux, Off, Size, T).

%% A send or a receive (the general path's; fast/6 writes the same row).
message(Dir, P, Peer, Ts, Msg, T0) ->
    Kind = case Dir of send -> ?K_SEND; 'receive' -> ?K_RECEIVE end,
    {Flags, Off, Size, T} = message_payload(Dir, Msg, T0),
    add_row(Kind, Flags, id(P), id(Peer), 0, Ts, 0, Off, Size, T).

%% A row whose payload, if any, is in the batch already at Off.
add_row(Kind, Flags, P0, Peer0, MFA0, Ts, Aux, Off, Size, T0) ->
    {P, T1} = intern(P0, T0),
    {Peer, T2} = intern(Peer0, T1),
    {MFA, T3} = intern(MFA0, T2),
    Header = <<Kind:8, Flags:8, 0:16, P:32/little, Peer:32/little, MFA:32/little,
              Ts:64/little-signed, Off:32/little, Size:32/little, Aux:64/little-signed>>,
    T4 = case T3#tr.in_batch of
             0 -> flush_timer(T3);
             _ -> T3
         end,
    T4#tr{headers = [Header | T4#tr.headers], last_ts = max(Ts, T4#tr.last_ts),
          in_batch = T4#tr.in_batch + 1}.

%% A batch leaves within flush_ms of its first event, however slowly the
%% rest trickle in (a trickle never lets the loop's idle timeout fire).
flush_timer(T = #tr{flush_timer = false, flush_ms = Ms}) ->
    erlang:send_after(Ms, self(), microscope_flush),
    T#tr{flush_timer = true};
flush_timer(T) ->
    T.

intern(0, T) -> {0, T};
intern(N, T) when is_integer(N) -> {N, T};
intern(?ID(X), T = #tr{intern = Map}) ->
    case Map of
        #{X := Id} -> {Id, T};
        _ ->
            Id = T#tr.next_id,
            {Id, T#tr{intern = Map#{X => Id}, next_id = Id + 1, defs = [{Id, X} | T#tr.defs]}}
    end.

%%%===================================================================
%%% THE BATCH FORMAT, READ BACK
%%%===================================================================

%% A batch's granularity rows: bookkeeping, like the dropped-count rows, not
%% trace messages kept.
granularity_rows(Headers) ->
    length([K || <<K:8, _:(?HEADER_BYTES - 1)/binary>> <= Headers, K =:= ?K_GRANULARITY]).

%% The counts of a batch's dropped-count rows (events too, but not kept
%% trace messages), read back from its headers: aux is the last field.
dropped_counts(Headers) ->
    [Aux || <<Kind:8, _:(?HEADER_BYTES - 9)/binary, Aux:64/little-signed>> <= Headers,
            Kind =:= ?K_DROPPED].

%% Every event's time (the header's fifth field), in batch order.
header_times(Headers) ->
    [Ts || <<_:16/binary, Ts:64/little-signed, _:16/binary>> <= Headers].
