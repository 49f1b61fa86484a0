%% Idiom: process aliases (OTP 24+) for replies, by hand. One client makes a
%% one-shot alias with alias([reply]) (it deactivates itself on the first
%% reply); another monitors the server with [{alias, reply_demonitor}] and
%% receives {MRef, Reply} or the DOWN -- the way gen:call itself works since
%% OTP 24, with no demonitor needed after a reply.
%% Mirrors: libraries written for OTP 24+ request/reply (and Elixir 1.15's
%% Task, which replies to an alias), where a late reply after a timeout can
%% never land in the caller's mailbox.
%% Traffic: 2 clients every 2 ms (~1000 requests/s) to a plain-process
%% geo-lookup server.
-module(idiom_alias_reply).

-export([start/0, stop/0, procs/0]).
-export([server/1]).

-define(GEO, idiom_alias_reply_geo).
-define(LOAD, idiom_alias_reply_load).

start() ->
    register(?GEO, proc_lib:spawn(?MODULE, server, [#{}])),
    start_load([fun() -> oneshot(0) end, fun() -> monitored(0) end]),
    ok.

stop() ->
    stop_load(),
    M = monitor(process, ?GEO), ?GEO ! stop,
    receive {'DOWN', M, _, _, _} -> ok end.

procs() -> [P || N <- [?GEO, ?LOAD], P <- [whereis(N)], is_pid(P)].

server(Cache) ->
    receive
        stop -> ok;
        {lookup, ReplyTo, Tag, Ip} ->
            City = maps:get(Ip rem 64, Cache, {city, Ip rem 64}),
            ReplyTo ! {Tag, City},
            server(Cache#{Ip rem 64 => City})
    end.

%% alias([reply]): the alias dies with the first message sent to it
oneshot(N) ->
    receive stop -> ok
    after 2 ->
        Alias = alias([reply]),
        ?GEO ! {lookup, Alias, Alias, N},
        receive {Alias, {city, _}} -> ok
        after 1000 -> unalias(Alias), exit(timeout)
        end,
        oneshot(N + 1)
    end.

%% monitor + alias, removed together by the reply (gen:call's own scheme)
monitored(N) ->
    receive stop -> ok
    after 2 ->
        MRef = monitor(process, ?GEO, [{alias, reply_demonitor}]),
        ?GEO ! {lookup, MRef, MRef, N},
        receive
            {MRef, {city, _}} -> ok;
            {'DOWN', MRef, process, _, Reason} -> exit(Reason)
        end,
        monitored(N + 1)
    end.

start_load(Loops) ->
    register(?LOAD, spawn(fun() -> [spawn_link(L) || L <- Loops],
                                   receive stop -> exit(shutdown) end end)).

stop_load() ->
    case whereis(?LOAD) of
        undefined -> ok;
        P -> M = monitor(process, P), P ! stop, receive {'DOWN', M, _, _, _} -> ok end
    end.
