%% Bug: unmatched messages pile up. A telemetry aggregator is a hand-written
%% receive loop that matches the message shapes it knows:
%% {reading, Sensor, Value} and {stats, From, Ref}. One sensor gateway was
%% upgraded and now sends {reading, Sensor, Value, Meta} (a unit and a
%% sequence number added). No clause matches the 4-tuple and the loop has no
%% catch-all, so those messages stay in the aggregator's mailbox forever:
%% its queue grows without bound, every receive scans past all of them
%% before finding a match, and the upgraded sensors' readings are silently
%% missing from the stats.
%% Mirrors: plain receive loops and proc_lib processes (also gen_statem
%% state functions without a catch-all event clause) after a message format
%% change on the sender side: an added field, a changed tag, a tuple that
%% became a map.
%% Traffic: 3 sensor gateways at ~60 readings/s each (one upgraded), a
%% dashboard asking for stats every 200 ms.
%% Evidence: message_queue_len of bug_unmatched_messages_aggregator grows
%% ~60/s and never drains; process_info(_, messages) is all
%% {reading, _, _, #{...}} 4-tuples from bug_unmatched_messages_gw_3; the
%% stats only ever count gw_1 and gw_2.
%% Root cause: the sender's message format changed to a 4-tuple that the
%% receiver's selective receive never matches, so those messages are never
%% consumed.
-module(bug_unmatched_messages).

-export([start/0, stop/0, procs/0]).

-define(AGG, bug_unmatched_messages_aggregator).
-define(DASH, bug_unmatched_messages_dashboard).
-define(GWS, [bug_unmatched_messages_gw_1, bug_unmatched_messages_gw_2,
              bug_unmatched_messages_gw_3]).

start() ->
    register(?AGG, spawn(fun() -> aggregator(#{}) end)),
    [register(Gw, spawn(fun() -> gateway(Gw, 0) end)) || Gw <- ?GWS],
    register(?DASH, spawn(fun() -> dashboard() end)),
    ok.

stop() ->
    [case whereis(N) of
         undefined -> ok;
         P -> M = monitor(process, P), exit(P, kill), receive {'DOWN', M, _, _, _} -> ok end
     end || N <- [?DASH | ?GWS] ++ [?AGG]],
    ok.

procs() -> [P || N <- [?AGG, ?DASH | ?GWS], P <- [whereis(N)], is_pid(P)].

%% the aggregator: running count/sum/max per sensor
aggregator(Stats) ->
    receive
        {reading, Sensor, Value} ->
            {C, Sum, Max} = maps:get(Sensor, Stats, {0, 0, Value}),
            aggregator(Stats#{Sensor => {C + 1, Sum + Value, max(Max, Value)}});
        {stats, From, Ref} ->
            From ! {Ref, Stats},
            aggregator(Stats)
    end.

%% sensor gateways: gw_3 runs the new firmware that sends the 4-tuple
gateway(Gw, N) ->
    timer:sleep(16),
    Sensor = {Gw, N rem 8},
    Value = 200 + (N * 13) rem 50,
    case Gw of
        bug_unmatched_messages_gw_3 -> ?AGG ! {reading, Sensor, Value, #{unit => decicelsius, seq => N}};
        _ -> ?AGG ! {reading, Sensor, Value}
    end,
    gateway(Gw, N + 1).

dashboard() ->
    timer:sleep(200),
    Ref = make_ref(),
    ?AGG ! {stats, self(), Ref},
    receive {Ref, _Stats} -> ok after 1000 -> ok end,
    dashboard().
