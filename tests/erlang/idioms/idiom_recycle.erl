%% Idiom: a deliberate recycle. A permanent "connection" process serves
%% requests and, after ~500 ms, ends itself with reason normal to reconnect
%% (the upstream rotates credentials / the connection has a max age); its
%% supervisor starts a fresh one. Clients look it up by name for every
%% request and, in the moment it is being replaced, wait and try again
%% (they never call a dead pid: whereis, then a call that retries on noproc).
%% Mirrors: Redix/AMQP/LDAP client connections with max-age recycling,
%% `{:stop, :normal, state}` + `restart: :permanent`.
%% Traffic: 2 clients calling every 3 ms (~670 calls/s), a recycle every
%% 500 ms (intensity 30 in 10 s is never reached). OTP's supervisor logs a
%% SUPERVISOR REPORT (child_terminated, reason normal) for each recycle.
-module(idiom_recycle).
-behaviour(gen_server).

-export([start/0, stop/0, procs/0]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2, start_conn/0]).

-define(SUP, idiom_recycle_sup).
-define(CONN, idiom_recycle_conn).
-define(LOAD, idiom_recycle_load).

start() ->
    {ok, Sup} = supervisor:start_link({local, ?SUP}, ?MODULE, sup),
    unlink(Sup),
    start_load([fun() -> client(C, 0) end || C <- [1, 2]]),
    ok.

stop() -> stop_load(), gen_server:stop(?SUP).

procs() -> [P || N <- [?SUP, ?CONN, ?LOAD], P <- [whereis(N)], is_pid(P)].

start_conn() -> gen_server:start_link({local, ?CONN}, ?MODULE, conn, []).

client(C, N) ->
    receive stop -> ok
    after 3 -> {ok, _} = request({get, C, N}), client(C, N + 1)
    end.

%% the client side of a connection that may be reconnecting
request(Req) ->
    case whereis(?CONN) of
        undefined -> timer:sleep(1), request(Req);
        Pid ->
            try gen_server:call(Pid, Req)
            catch exit:{Reason, _} when Reason =:= noproc; Reason =:= normal ->
                timer:sleep(1), request(Req)
            end
    end.

init(sup) ->
    {ok, {#{strategy => one_for_one, intensity => 30, period => 10},
          [#{id => conn, start => {?MODULE, start_conn, []}, restart => permanent}]}};
init(conn) ->
    erlang:send_after(500, self(), max_age),
    {ok, #{served => 0, session => make_ref()}}.

handle_call({get, _C, N}, _From, S = #{served := K}) ->
    {reply, {ok, N}, S#{served := K + 1}}.

handle_cast(_Msg, S) -> {noreply, S}.

handle_info(max_age, S) -> {stop, normal, S}.

start_load(Loops) ->
    register(?LOAD, spawn(fun() -> [spawn_link(L) || L <- Loops],
                                   receive stop -> exit(shutdown) end end)).

stop_load() ->
    case whereis(?LOAD) of
        undefined -> ok;
        P -> M = monitor(process, P), P ! stop, receive {'DOWN', M, _, _, _} -> ok end
    end.
