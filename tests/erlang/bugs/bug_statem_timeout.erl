%% Bug: an idle timeout that traffic never resets. The upstream connection
%% (a gen_statem: disconnected <-> connected) should close itself after
%% 500 ms WITHOUT traffic. Its author armed a state_timeout on entering
%% `connected` and, for each request, returned keep_state_and_data, believing
%% traffic restarts the idle timer. A state_timeout runs until the state
%% changes (or a new state_timeout is set): requests do not touch it. So
%% 500 ms after every connect the "idle" timeout fires on a busy connection,
%% the connection is torn down, requests fail with {error, disconnected}
%% during the 100 ms reconnect, and it all repeats: connected -> disconnected
%% every ~600 ms.
%% Mirrors: gen_statem clients for TCP/AMQP/MQTT/database connections with an
%% idle or heartbeat timeout (state_timeout used where an event timeout, or a
%% state_timeout re-armed on each request, was meant).
%% Traffic: a client sends a request every 20 ms (~50 calls/s).
%% Steady: the flips recur on their own from start/0 (no trigger).
%% Evidence: state changes connected -> disconnected -> connected every
%% ~600 ms with a state_timeout `idle` firing while requests arrive every
%% 20 ms; the connection's disconnect count climbing ~1.6/s; the client's
%% requests answered {error, disconnected} in each gap.
%% Root cause: the idle timeout is a state_timeout, which requests handled
%% in the same state do not reset, so it fires 500 ms after each connect no
%% matter how busy the connection is.
-module(bug_statem_timeout).
-behaviour(gen_statem).

-export([start/0, stop/0, procs/0]).
-export([init/1, callback_mode/0, connected/3, disconnected/3]).

-define(CONN, bug_statem_timeout_conn).
-define(CLIENT, bug_statem_timeout_client).
-define(IDLE_MS, 500).
-define(RECONNECT_MS, 100).

start() ->
    {ok, _} = gen_statem:start({local, ?CONN}, ?MODULE, [], []),
    register(?CLIENT, proc_lib:spawn(fun() -> client(0, #{ok => 0, failed => 0}) end)),
    ok.

stop() ->
    case whereis(?CLIENT) of undefined -> ok; C -> exit(C, kill) end,
    [catch gen_statem:stop(?CONN) || whereis(?CONN) =/= undefined],
    ok.

procs() -> [P || N <- [?CONN, ?CLIENT], P <- [whereis(N)], is_pid(P)].

client(N, Stats) ->
    receive after 20 -> ok end,
    Key = case gen_statem:call(?CONN, {query, N}, 1000) of
              {ok, _} -> ok;
              {error, disconnected} -> failed
          end,
    client(N + 1, maps:update_with(Key, fun(C) -> C + 1 end, Stats)).

callback_mode() -> [state_functions, state_enter].

init([]) ->
    {ok, disconnected, #{socket => undefined, disconnects => 0, served => 0}}.

disconnected(enter, _Old, _D) ->
    {keep_state_and_data, [{state_timeout, ?RECONNECT_MS, reconnect}]};
disconnected(state_timeout, reconnect, D) ->
    {next_state, connected, D#{socket := make_ref()}};
disconnected({call, From}, {query, _}, _D) ->
    {keep_state_and_data, [{reply, From, {error, disconnected}}]};
disconnected({call, From}, stats, D) ->
    {keep_state_and_data, [{reply, From, D}]}.

connected(enter, _Old, _D) ->
    %% close the connection when it has been idle for ?IDLE_MS
    {keep_state_and_data, [{state_timeout, ?IDLE_MS, idle}]};
connected(state_timeout, idle, D = #{disconnects := N}) ->
    logger:notice("upstream connection idle for ~b ms, closing", [?IDLE_MS]),
    {next_state, disconnected, D#{socket := undefined, disconnects := N + 1}};
connected({call, From}, {query, Q}, D = #{served := S}) ->
    %% traffic: the connection is in use, so it is not idle
    {keep_state, D#{served := S + 1}, [{reply, From, {ok, {row, Q}}}]};
connected({call, From}, stats, D) ->
    {keep_state_and_data, [{reply, From, D}]}.
