%% Idiom: adaptive backpressure like Elixir's Logger: a producer API casts
%% while the consumer's message_queue_len is under a threshold, and switches
%% to a call (waiting for the consumer to catch up) when it is over; the
%% consumer's work varies, so it switches now and then.
%% Mirrors: Logger's sync_threshold / async mode, telemetry reporters and
%% audit logs that must not let a slow sink's mailbox grow without bound.
%% Traffic: 3 producers logging every 2 ms (~1300 entries/s) to a sink that
%% stalls 15 ms on every 300th entry (an fsync): ~20 entries queue up behind
%% each stall, enough to turn the producers synchronous for a moment.
-module(idiom_sync_ack).
-behaviour(gen_server).

-export([start/0, stop/0, procs/0]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2]).

-define(SINK, idiom_sync_ack_audit_log).
-define(LOAD, idiom_sync_ack_load).
-define(SYNC_THRESHOLD, 20).

start() ->
    {ok, _} = gen_server:start({local, ?SINK}, ?MODULE, [], []),
    start_load([fun() -> producer(P, 0) end || P <- [1, 2, 3]]),
    ok.

stop() -> stop_load(), gen_server:stop(?SINK).

procs() -> [P || N <- [?SINK, ?LOAD], P <- [whereis(N)], is_pid(P)].

%% the API: async while the sink keeps up, sync once it falls behind
log(Entry) ->
    case erlang:process_info(whereis(?SINK), message_queue_len) of
        {message_queue_len, Len} when Len >= ?SYNC_THRESHOLD -> ok = gen_server:call(?SINK, {log, Entry});
        _ -> gen_server:cast(?SINK, {log, Entry})
    end.

producer(P, N) ->
    receive stop -> ok
    after 2 -> log({P, N, <<"user signed in">>}), producer(P, N + 1)
    end.

init([]) -> {ok, #{written => 0, synced => 0}}.

handle_call({log, Entry}, _From, S = #{synced := Y}) ->
    {noreply, S1} = handle_cast({log, Entry}, S),
    {reply, ok, S1#{synced := Y + 1}}.

handle_cast({log, _Entry}, S = #{written := W}) ->
    %% an fsync every 300 entries
    case W rem 300 of 0 -> timer:sleep(15); _ -> ok end,
    {noreply, S#{written := W + 1}}.

handle_info(_Msg, S) -> {noreply, S}.

start_load(Loops) ->
    register(?LOAD, spawn(fun() -> [spawn_link(L) || L <- Loops],
                                   receive stop -> exit(shutdown) end end)).

stop_load() ->
    case whereis(?LOAD) of
        undefined -> ok;
        P -> M = monitor(process, P), P ! stop, receive {'DOWN', M, _, _, _} -> ok end
    end.
