%% Bug: blocking init. A database connection gen_server opens its connection
%% inside init/1 (connect + authenticate + warm-up: ~1.5 s against a slow
%% server). gen_server:start_link does not return until init/1 does, so its
%% supervisor is stuck in start_child for the whole connect. When the
%% connection crashes, the supervisor restarts it and blocks ~1.5 s; the new
%% process is registered under the name but sits in init/1, so every query
%% made meanwhile waits in its mailbox and times out (500 ms call timeout),
%% and anything that asks the supervisor (count_children, a health check)
%% blocks too.
%% Mirrors: Ecto/Postgrex-style or AMQP/Redis client GenServers that connect
%% in init/1 instead of returning fast and connecting in handle_continue or
%% with a retry timer (the pattern Fred Hebert's "It's About the Guarantees"
%% warns about).
%% Traffic: 4 clients querying every ~20 ms with a 500 ms timeout; a health
%% check asking the supervisor every 250 ms. trigger/0: the connection
%% receives a malformed packet and crashes.
%% Evidence: after the crash, the supervisor restarts bug_blocking_init_db
%% and does not return from the restart for ~1.5 s (the new pid sits in
%% bug_blocking_init:init/1 -> timer:sleep); clients' calls to
%% bug_blocking_init_db exit with timeout, and the health check's
%% supervisor:count_children call hangs for the whole connect as well.
%% Root cause: init/1 does the slow connect synchronously, so every
%% (re)start blocks the supervisor and the service is unreachable for its
%% duration.
-module(bug_blocking_init).
-behaviour(gen_server).

-export([start/0, stop/0, procs/0, trigger/0]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2, start_db/0]).

-define(SUP, bug_blocking_init_sup).
-define(DB, bug_blocking_init_db).
-define(CLIENTS, bug_blocking_init_clients).
-define(HEALTH, bug_blocking_init_health).
-define(CONNECT_MS, 1500).

start() ->
    {ok, Sup} = supervisor:start_link({local, ?SUP}, ?MODULE, sup),
    unlink(Sup),
    register(?CLIENTS, spawn(fun() ->
        process_flag(trap_exit, true),
        Cs = [spawn_link(fun() -> client(C, 0) end) || C <- lists:seq(1, 4)],
        receive stop -> [exit(C, shutdown) || C <- Cs] end
    end)),
    register(?HEALTH, spawn(fun() -> health(#{checks => 0, worst_ms => 0}) end)),
    ok.

trigger() ->
    ?DB ! {tcp, fake_socket, <<"garbled">>},
    ok.

stop() ->
    [case whereis(N) of
         undefined -> ok;
         P -> M = monitor(process, P), P ! stop, receive {'DOWN', M, _, _, _} -> ok end
     end || N <- [?CLIENTS, ?HEALTH]],
    catch gen_server:stop(?SUP),
    ok.

procs() -> [P || N <- [?SUP, ?DB, ?CLIENTS, ?HEALTH], P <- [whereis(N)], is_pid(P)].

client(C, N) ->
    timer:sleep(20),
    Sql = "SELECT balance FROM accounts WHERE id = $1",
    try gen_server:call(?DB, {query, Sql, [C * 100 + N rem 100]}, 500) of
        {ok, _Rows} -> ok
    catch exit:{timeout, _} -> logger:warning("client ~p: query timed out", [C]);
          exit:{Reason, _} -> logger:warning("client ~p: query failed: ~P", [C, Reason, 5])
    end,
    client(C, N + 1).

%% the health check: asks the supervisor how its children are, every 250 ms
health(Stats = #{checks := N, worst_ms := W}) ->
    receive stop -> ok
    after 250 ->
        T0 = erlang:monotonic_time(millisecond),
        _ = supervisor:count_children(?SUP),
        Took = erlang:monotonic_time(millisecond) - T0,
        health(Stats#{checks := N + 1, worst_ms := max(W, Took)})
    end.

start_db() -> gen_server:start_link({local, ?DB}, ?MODULE, db, []).

init(sup) ->
    {ok, {#{strategy => one_for_one, intensity => 5, period => 10},
          [#{id => db, start => {?MODULE, start_db, []}}]}};
init(db) ->
    %% connect, authenticate, prepare statements: synchronous, ~1.5 s
    timer:sleep(?CONNECT_MS),
    {ok, #{socket => fake_socket, queries => 0, connected_at => erlang:monotonic_time(millisecond)}}.

handle_call({query, _Sql, [Id]}, _From, S = #{queries := Q}) ->
    {reply, {ok, [{Id, Id * 10}]}, S#{queries := Q + 1}}.

handle_cast(_Msg, S) -> {noreply, S}.

%% a packet from the server: only well-formed frames are expected
handle_info({tcp, _Sock, <<Len:32, Frame:Len/binary>>}, S) ->
    {noreply, S#{last_frame => Frame}}.
