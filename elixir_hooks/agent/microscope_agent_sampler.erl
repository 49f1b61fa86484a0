%%% @doc The sampler: what no trace message measures, read from the node
%%% itself every mailbox_ms for the traced processes, and sent to the tracer
%%% as events: mailbox lengths, memory, heap, reductions and refc binary
%%% bytes, how busy the
%%% schedulers are (which steers the tracer's granularity), and a counters
%%% level's call counts.
%%%
%%% ```
%%%   Sampler = spawn_link(microscope_agent_sampler, init,
%%%                        [Tracer, Procs, {MailboxMs, Adaptive, Counted}]),
%%%   Sampler ! {add, NewProcess},
%%%   final(Sampler)        % the last round, taken before the trace ends
%%% '''
%%%
%%% Its own process, one per trace, linked to the controller: reading a busy
%%% process's queue can wait for that process to be scheduled, and the
%%% tracer must never wait.
-module(microscope_agent_sampler).
-include("microscope_agent.hrl").

-export([final/1]).
%% @private spawned by the controller
-export([init/3]).

%% The receive trace event is no measure of a mailbox: before OTP 27 it
%% fires when the receiver moves messages from its outer signal queue,
%% which a busy process does late and in bulk. So every traced process's
%% real message_queue_len is read here, at the start, every Interval ms
%% (stretched so one round costs at most 2% of a scheduler) and at the
%% stop; a change becomes a `mailbox' event. Its own process: reading a
%% busy process's queue can wait for that process to be scheduled.
%%
%% With Load (an adaptive trace), each round also tells the tracer how busy
%% the schedulers were since the last ({microscope_load, PerMille}). The
%% scheduler_wall_time flag this needs is held per process: it goes back off
%% when the sampler ends, unless someone else holds it too.
%%
%% With Counted ({Backend, MFAs}: a counters level with modules=), each round
%% also sends each function's calls since the last ({microscope_calls, ...}).
init(Tracer, Procs, {Interval, Load, Counted}) ->
    Load andalso erlang:system_flag(scheduler_wall_time, true),
    Last = sample_round(Tracer, Procs, #{}, first),
    loop(Tracer, Procs, Last, Interval, now_ms() + Interval,
         {wall_time(Load), Counted, count_calls(Tracer, Counted, #{})}).

%% Due is when the next round runs, in absolute time: an app that spawns
%% faster than Interval sends {add, P} that often, and a relative `after'
%% would start over at each one and never sample.
loop(Tracer, Procs, Last, Interval, Due, Node = {Wall, Counted, Calls}) ->
    receive
        {add, P} -> loop(Tracer, [P | Procs], Last, Interval, Due, Node);
        {final, From, Ref} ->
            sample_round(Tracer, Procs, Last, final),
            count_calls(Tracer, Counted, Calls),
            From ! {Ref, done}
    after max(0, Due - now_ms()) ->
        T0 = erlang:monotonic_time(microsecond),
        Last1 = sample_round(Tracer, Procs, Last, round),
        Node1 = {report_load(Tracer, Wall), Counted, count_calls(Tracer, Counted, Calls)},
        Cost = (erlang:monotonic_time(microsecond) - T0) div 1000,
        Alive = [P || P <- Procs, is_map_key(P, Last1)],
        loop(Tracer, Alive, Last1, Interval, now_ms() + max(Interval, 50 * Cost), Node1)
    end.

now_ms() -> erlang:monotonic_time(millisecond).

%% Each counted function's calls since the last round, as one event each.
count_calls(_Tracer, none, Calls) ->
    Calls;
count_calls(Tracer, {Backend, MFAs}, Calls) ->
    Ts = erlang:monotonic_time(),
    maps:from_list(
      [begin
           N = case microscope_agent_setup:call_count(Backend, MFA) of
                   {call_count, C} when is_integer(C) -> C;
                   _ -> maps:get(MFA, Calls, 0)
               end,
           Delta = N - maps:get(MFA, Calls, 0),
           Delta > 0 andalso (Tracer ! {microscope_calls, MFA, Delta, Ts}),
           {MFA, N}
       end || MFA <- MFAs]).

wall_time(false) -> none;
wall_time(true) ->
    case erlang:statistics(scheduler_wall_time) of
        undefined -> none;
        L -> [S || S = {Id, _, _} <- L, Id =< erlang:system_info(schedulers)]
    end.

%% Busy time over all time of the normal schedulers since the last round.
report_load(_Tracer, none) ->
    none;
report_load(Tracer, Before) ->
    case wall_time(true) of
        none -> none;
        Now ->
            {Active, Total} = lists:foldl(
                fun({{I, A0, T0}, {I, A1, T1}}, {A, T}) -> {A + A1 - A0, T + T1 - T0} end,
                {0, 0}, lists:zip(lists:sort(Before), lists:sort(Now))),
            Total > 0 andalso (Tracer ! {microscope_load, Active * 1000 div Total}),
            Now
    end.

%% A process appears in a round's result only while alive. Its length is
%% sent when it differs from the last one sent (a process never sampled
%% counts as 0, so the start sends exactly the non-empty mailboxes) and
%% also whenever the process has run since the last round, changed or not:
%% messages leave a queue in ways no trace event shows (a monitor's DOWN
%% flushed by demonitor, as every gen call and Task.await does), so a
%% model counted from receives and callbacks drifts, and each sample of an
%% active process puts it back on the node's own count. Its memory, heap
%% and reductions go too, when the process has run or its memory changed
%% (so an idle process costs nothing).
%%
%% The refc binaries a process references live off its heap, so neither
%% memory nor heap shows a process that keeps them alive (a sub-binary of
%% each packet kept in its state): their bytes are read too, at the first
%% and the last round and at most every ?BINARY_EVERY_MS while the process
%% runs. Listing them costs one element per binary, so they are read less
%% often than the queue, and the round's cost stays inside the 2% budget.
-define(BINARY_EVERY_MS, 1000).

sample_round(Tracer, Procs, Last, Round) ->
    Now = now_ms(),
    lists:foldl(
      fun(P, Acc) ->
              case erlang:process_info(P, [message_queue_len, memory, total_heap_size,
                                           reductions]) of
                  [{message_queue_len, Len}, {memory, Mem}, {total_heap_size, Heap},
                   {reductions, Reds}] ->
                      Ts = erlang:monotonic_time(),
                      {LastLen, LastVitals, LastBinary} = maps:get(P, Last, {0, none, none}),
                      Vitals = {Mem, Reds},
                      Ran = LastVitals =/= none andalso Vitals =/= LastVitals,
                      Binary = binary_bytes(P, LastBinary, Ran, Now, Round),
                      (Len =:= LastLen andalso not Ran)
                          orelse (Tracer ! {microscope_mailbox, P, Len, Ts}),
                      Read = Binary =/= LastBinary,
                      (Vitals =:= LastVitals andalso not Read)
                          orelse (Tracer ! {microscope_vitals, P, Mem, Heap, Reds,
                                            Read andalso bytes_of(Binary), Ts}),
                      Acc#{P => {Len, Vitals, Binary}};
                  undefined ->
                      Acc
              end
      end, #{}, Procs).

%% {ReadAtMs, Bytes} of the refc binaries P references, read again when due.
binary_bytes(P, Last, Ran, Now, Round) ->
    Due = case Last of
              none -> true;
              {At, _} -> Round =:= final orelse (Ran andalso Now - At >= ?BINARY_EVERY_MS)
          end,
    case Due andalso erlang:process_info(P, binary) of
        {binary, Binaries} ->
            {Now, lists:foldl(fun({_, Size, _}, Sum) -> Sum + Size end, 0, Binaries)};
        _ -> Last
    end.

bytes_of({_, Bytes}) -> Bytes.

%% The last round (before the trace's end), then the sampler goes.
final(Sampler) ->
    _ = microscope_agent:request(Sampler, fun(From, Ref) -> {final, From, Ref} end, 500),
    unlink(Sampler),
    exit(Sampler, kill).
