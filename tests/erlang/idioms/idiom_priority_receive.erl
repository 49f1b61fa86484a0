%% Idiom: priority by selective receive. A dispatcher first takes any
%% {urgent, _} message already queued (receive ... after 0), and only then
%% anything else; control messages (pause/resume) are served first as well.
%% Mirrors: hand-written schedulers and protocol loops that must answer
%% heartbeats or cancellations ahead of bulk work (the classic "priority
%% receive" from Learn You Some Erlang, used in MQTT/AMQP clients).
%% Traffic: ~700 normal and ~150 urgent messages/s from 2 sources, each
%% normal job a little CPU; a pause/resume pair every 100 ms.
-module(idiom_priority_receive).

-export([start/0, stop/0, procs/0]).
-export([dispatcher/1]).

-define(DISPATCH, idiom_priority_receive_dispatcher).
-define(LOAD, idiom_priority_receive_load).

start() ->
    register(?DISPATCH, proc_lib:spawn(?MODULE, dispatcher, [#{urgent => 0, normal => 0}])),
    start_load([fun() -> bulk(0) end, fun() -> alarms(0) end]),
    ok.

stop() ->
    stop_load(),
    M = monitor(process, ?DISPATCH), ?DISPATCH ! stop,
    receive {'DOWN', M, _, _, _} -> ok end.

procs() -> [P || N <- [?DISPATCH, ?LOAD], P <- [whereis(N)], is_pid(P)].

dispatcher(S = #{urgent := U, normal := N}) ->
    receive
        {urgent, _Alarm} -> dispatcher(S#{urgent := U + 1});
        pause -> paused(S)
    after 0 ->
        receive
            stop -> ok;
            {urgent, _Alarm} -> dispatcher(S#{urgent := U + 1});
            pause -> paused(S);
            {job, J} -> _ = erlang:phash2(lists:seq(1, 20 + J rem 50)), dispatcher(S#{normal := N + 1})
        end
    end.

%% paused: only urgent messages and resume
paused(S = #{urgent := U}) ->
    receive
        resume -> dispatcher(S);
        {urgent, _Alarm} -> paused(S#{urgent := U + 1})
    end.

bulk(N) ->
    receive stop -> ok
    after 3 ->
        [?DISPATCH ! {job, N + K} || K <- [1, 2]],
        _ = N rem 33 =:= 0 andalso (?DISPATCH ! pause),
        _ = N rem 33 =:= 2 andalso (?DISPATCH ! resume),
        bulk(N + 1)
    end.

alarms(N) ->
    receive stop -> ok
    after 6 -> ?DISPATCH ! {urgent, {disk_almost_full, N}}, alarms(N + 1)
    end.

start_load(Loops) ->
    register(?LOAD, spawn(fun() -> [spawn_link(L) || L <- Loops],
                                   receive stop -> exit(shutdown) end end)).

stop_load() ->
    case whereis(?LOAD) of
        undefined -> ok;
        P -> M = monitor(process, P), P ! stop, receive {'DOWN', M, _, _, _} -> ok end
    end.
