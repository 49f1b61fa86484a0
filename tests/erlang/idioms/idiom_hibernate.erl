%% Idiom: hibernation. Mostly idle per-user processes hibernate between
%% messages to give their heap back: gen_servers returning {noreply, S,
%% hibernate}, one started with the hibernate_after option, and a
%% hand-written loop calling proc_lib:hibernate/3.
%% Mirrors: Phoenix channels / LiveView processes (hibernate_after), idle
%% websocket connections, per-device processes in IoT backends.
%% Traffic: 16 connections each getting a message every ~40 ms, plus a
%% presence loop fed every 5 ms (~600 messages/s).
-module(idiom_hibernate).
-behaviour(gen_server).

-export([start/0, stop/0, procs/0]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2, presence/1]).

-define(CONNS, 16).
-define(PRESENCE, idiom_hibernate_presence).
-define(LOAD, idiom_hibernate_load).

start() ->
    [{ok, _} = gen_server:start({local, conn(K)}, ?MODULE, K, opts(K)) || K <- lists:seq(1, ?CONNS)],
    register(?PRESENCE, proc_lib:spawn(?MODULE, presence, [#{}])),
    register(?LOAD, spawn(fun() -> load(0) end)),
    ok.

stop() ->
    M = monitor(process, ?LOAD), ?LOAD ! stop,
    receive {'DOWN', M, _, _, _} -> ok end,
    ?PRESENCE ! stop,
    [gen_server:stop(conn(K)) || K <- lists:seq(1, ?CONNS)],
    ok.

procs() ->
    [P || N <- [?PRESENCE, ?LOAD | [conn(K) || K <- lists:seq(1, ?CONNS)]],
          P <- [whereis(N)], is_pid(P)].

conn(K) -> list_to_atom("idiom_hibernate_conn" ++ integer_to_list(K)).

%% one in four is started like a LiveView: hibernate after 15 ms idle
opts(K) when K rem 4 =:= 0 -> [{hibernate_after, 15}];
opts(_) -> [].

load(N) ->
    receive stop -> ok
    after 5 ->
        K = 1 + N rem ?CONNS,
        gen_server:cast(conn(K), {push, N}),
        _ = N rem 5 =:= 0 andalso gen_server:call(conn(K), info),
        ?PRESENCE ! {seen, K, N},
        load(N + 1)
    end.

init(K) -> {ok, #{id => K, pushed => 0}}.

handle_call(info, _From, S = #{id := K, pushed := P}) ->
    {reply, {K, P}, S, hibernate}.

handle_cast({push, _N}, S = #{id := K, pushed := P}) when K rem 4 =:= 0 ->
    {noreply, S#{pushed := P + 1}};            % hibernate_after does it
handle_cast({push, _N}, S = #{pushed := P}) ->
    {noreply, S#{pushed := P + 1}, hibernate}.

handle_info(_Msg, S) -> {noreply, S, hibernate}.

%% a plain loop that hibernates after each message; wakes up in presence/1
presence(Seen) ->
    receive
        stop -> ok;
        {seen, K, N} -> proc_lib:hibernate(?MODULE, presence, [Seen#{K => N}])
    end.
