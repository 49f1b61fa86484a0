%% Bug: timer leak. A client connection keeps its upstream session alive with
%% a heartbeat every 100 ms: handle_info(heartbeat) pings and re-arms with
%% erlang:send_after. The upstream drops the session every ~500 ms (a flaky
%% link); on reconnect the client "starts its heartbeat" again with another
%% send_after, but the old chain is still running and nobody kept its timer
%% ref to cancel it. Each reconnect adds one more self-perpetuating heartbeat
%% chain: after N reconnects the client pings N+1 times per 100 ms.
%% Mirrors: gen_server clients of brokers/databases (AMQP, Redis, MQTT) that
%% call schedule_heartbeat() from init and again from the reconnect path.
%% Traffic: one connection; a link drop every ~500 ms; heartbeats every
%% 100 ms per live chain.
%% Evidence: the upstream's ping count per second climbs (10, 20, 30 ... /s);
%% erlang:send_after(100, _, heartbeat) called ever more often from
%% bug_timer_leak_conn; the conn's `chains_started` counter rises with each
%% reconnect and no erlang:cancel_timer is ever called.
%% Root cause: the reconnect path arms a new heartbeat timer without
%% cancelling the one already running, so heartbeat timers multiply.
-module(bug_timer_leak).
-behaviour(gen_server).

-export([start/0, stop/0, procs/0]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2]).

-define(CONN, bug_timer_leak_conn).
-define(UPSTREAM, bug_timer_leak_upstream).
-define(HEARTBEAT_MS, 100).

start() ->
    {ok, _} = gen_server:start({local, ?UPSTREAM}, ?MODULE, upstream, []),
    {ok, _} = gen_server:start({local, ?CONN}, ?MODULE, conn, []),
    ok.

stop() ->
    [catch gen_server:stop(N) || N <- [?CONN, ?UPSTREAM]],
    ok.

procs() -> [P || N <- [?CONN, ?UPSTREAM], P <- [whereis(N)], is_pid(P)].

init(upstream) ->
    erlang:send_after(500, self(), drop_session),
    {ok, #{session => undefined, pings => 0, sessions => 0}};
init(conn) ->
    {ok, Session} = gen_server:call(?UPSTREAM, {connect, self()}),
    schedule_heartbeat(),
    {ok, #{session => Session, chains_started => 1, pings_sent => 0, reconnects => 0}}.

schedule_heartbeat() ->
    erlang:send_after(?HEARTBEAT_MS, self(), heartbeat).

handle_call({connect, Pid}, _From, S = #{sessions := N}) ->
    {reply, {ok, N + 1}, S#{session := {Pid, N + 1}, sessions := N + 1}}.

handle_cast({ping, Session}, S = #{pings := P}) ->
    {noreply, S#{pings := P + 1, last_ping => Session}}.

%% conn
handle_info(heartbeat, S = #{session := Session, pings_sent := P}) ->
    gen_server:cast(?UPSTREAM, {ping, Session}),
    schedule_heartbeat(),
    {noreply, S#{pings_sent := P + 1}};
handle_info({session_closed, _Old}, S = #{chains_started := C, reconnects := R}) ->
    {ok, Session} = gen_server:call(?UPSTREAM, {connect, self()}),
    schedule_heartbeat(),
    {noreply, S#{session := Session, chains_started := C + 1, reconnects := R + 1}};
%% upstream: the link drops the session every ~500 ms
handle_info(drop_session, S = #{session := Session}) ->
    erlang:send_after(500, self(), drop_session),
    case Session of
        {Pid, Id} -> Pid ! {session_closed, Id};
        undefined -> ok
    end,
    {noreply, S#{session := undefined}}.
