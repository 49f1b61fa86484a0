%% Idiom: gen_statem in state_functions mode with state_enter: a database
%% connection that connects, serves queries, and reconnects every few hundred
%% queries (the server rotates connections). Calls that arrive while it is
%% disconnected or connecting are postponed and served once connected.
%% Uses: call, cast, state_timeout (reconnect backoff, handshake), an event
%% timeout (idle ping when nothing came for 30 ms), a generic named timeout
%% (keepalive every 20 ms), postpone, and state enter calls.
%% Mirrors: Postgrex/Redix-style connection processes, MQTT clients.
%% Traffic: 2 clients querying every 3 ms, a notifier casting every 10 ms
%% (~770 events/s), a reconnect about every 400 ms.
-module(idiom_statem_functions).
-behaviour(gen_statem).

-export([start/0, stop/0, procs/0]).
-export([init/1, callback_mode/0, disconnected/3, connecting/3, connected/3]).

-define(CONN, idiom_statem_functions_conn).
-define(LOAD, idiom_statem_functions_load).
-define(ROTATE_AFTER, 250).

start() ->
    {ok, _} = gen_statem:start({local, ?CONN}, ?MODULE, [], []),
    start_load([fun() -> client(0) end, fun() -> client(1) end, fun() -> notifier(0) end]),
    ok.

stop() -> stop_load(), gen_statem:stop(?CONN).

procs() -> [P || N <- [?CONN, ?LOAD], P <- [whereis(N)], is_pid(P)].

client(N) ->
    receive stop -> ok
    after 3 -> {ok, _} = gen_statem:call(?CONN, {query, N}, 5000), client(N + 1)
    end.

notifier(N) ->
    receive stop -> ok
    after 10 -> gen_statem:cast(?CONN, {listen, N}), notifier(N + 1)
    end.

callback_mode() -> [state_functions, state_enter].

init([]) -> {ok, disconnected, #{served => 0, connects => 0, pings => 0, notices => 0}}.

disconnected(enter, _Old, _Data) ->
    {keep_state_and_data, [{state_timeout, 2, reconnect}, {{timeout, keepalive}, cancel}]};
disconnected(state_timeout, reconnect, Data) ->
    {next_state, connecting, Data};
disconnected(cast, {listen, _}, Data = #{notices := N}) ->
    {keep_state, Data#{notices := N + 1}};
disconnected({call, _From}, _Request, _Data) ->
    {keep_state_and_data, [postpone]}.

connecting(enter, _Old, _Data) ->
    {keep_state_and_data, [{state_timeout, 1, handshake_done}]};
connecting(state_timeout, handshake_done, Data = #{connects := C}) ->
    {next_state, connected, Data#{connects := C + 1, served := 0}};
connecting(cast, {listen, _}, Data = #{notices := N}) ->
    {keep_state, Data#{notices := N + 1}};
connecting({call, _From}, _Request, _Data) ->
    {keep_state_and_data, [postpone]}.

connected(enter, _Old, _Data) ->
    {keep_state_and_data, [{{timeout, keepalive}, 20, ping}]};
connected({call, _From}, {query, _Q}, Data = #{served := S}) when S >= ?ROTATE_AFTER ->
    %% the server asks us to reconnect: this query waits for the new connection
    {next_state, disconnected, Data, [postpone]};
connected({call, From}, {query, Q}, Data = #{served := S}) ->
    {keep_state, Data#{served := S + 1}, [{reply, From, {ok, [{row, Q}]}}, {timeout, 30, idle}]};
connected(cast, {listen, _}, Data = #{notices := N}) ->
    {keep_state, Data#{notices := N + 1}, [{timeout, 30, idle}]};
connected({timeout, keepalive}, ping, Data = #{pings := P}) ->
    {keep_state, Data#{pings := P + 1}, [{{timeout, keepalive}, 20, ping}]};
connected(timeout, idle, Data = #{pings := P}) ->
    {keep_state, Data#{pings := P + 1}}.

start_load(Loops) ->
    register(?LOAD, spawn(fun() -> [spawn_link(L) || L <- Loops],
                                   receive stop -> exit(shutdown) end end)).

stop_load() ->
    case whereis(?LOAD) of
        undefined -> ok;
        P -> M = monitor(process, P), P ! stop, receive {'DOWN', M, _, _, _} -> ok end
    end.
