%% Idiom: batching: collect items until there are 32 or 20 ms have passed
%% since the first one (erlang:start_timer when a batch opens, cancelled
%% when it fills up), then flush the batch to a writer in one message. A
%% timer that fired just before its batch filled is recognised by its
%% reference and ignored.
%% Mirrors: Broadway batchers, Logger/telemetry exporters, bulk-insert
%% buffers in front of a database or Kafka producer.
%% Traffic: 2 producers, bursts of 1-4 items every 3 ms (~1300 items/s):
%% batches close by size and by time.
-module(idiom_batcher).
-behaviour(gen_server).

-export([start/0, stop/0, procs/0]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2]).

-define(BATCHER, idiom_batcher_batcher).
-define(WRITER, idiom_batcher_writer).
-define(LOAD, idiom_batcher_load).
-define(SIZE, 32).
-define(WAIT, 20).

start() ->
    {ok, _} = gen_server:start({local, ?WRITER}, ?MODULE, writer, []),
    {ok, _} = gen_server:start({local, ?BATCHER}, ?MODULE, batcher, []),
    start_load([fun() -> producer(P, 0) end || P <- [1, 2]]),
    ok.

stop() -> stop_load(), [gen_server:stop(N) || N <- [?BATCHER, ?WRITER]], ok.

procs() -> [P || N <- [?BATCHER, ?WRITER, ?LOAD], P <- [whereis(N)], is_pid(P)].

producer(P, N) ->
    receive stop -> ok
    after 3 ->
        [gen_server:cast(?BATCHER, {add, {P, N + K}}) || K <- lists:seq(1, 1 + N rem 4)],
        producer(P, N + 4)
    end.

init(writer) -> {ok, #{batches => 0, rows => 0}};
init(batcher) -> {ok, #{items => [], count => 0, timer => undefined}}.

handle_call(_Req, _From, S) -> {reply, ok, S}.

handle_cast({add, Item}, S = #{items := [], timer := undefined}) ->
    {noreply, S#{items := [Item], count := 1, timer := erlang:start_timer(?WAIT, self(), flush)}};
handle_cast({add, Item}, S = #{items := Items, count := C, timer := T}) when C + 1 >= ?SIZE ->
    erlang:cancel_timer(T),
    {noreply, flush(S#{items := [Item | Items]})};
handle_cast({add, Item}, S = #{items := Items, count := C}) ->
    {noreply, S#{items := [Item | Items], count := C + 1}};
handle_cast({write, Rows}, S = #{batches := B, rows := R}) ->                    % writer
    {noreply, S#{batches := B + 1, rows := R + length(Rows)}}.

handle_info({timeout, T, flush}, S = #{timer := T}) -> {noreply, flush(S)};
handle_info({timeout, _Stale, flush}, S) -> {noreply, S}.

flush(S = #{items := Items}) ->
    gen_server:cast(?WRITER, {write, lists:reverse(Items)}),
    S#{items := [], count := 0, timer := undefined}.

start_load(Loops) ->
    register(?LOAD, spawn(fun() -> [spawn_link(L) || L <- Loops],
                                   receive stop -> exit(shutdown) end end)).

stop_load() ->
    case whereis(?LOAD) of
        undefined -> ok;
        P -> M = monitor(process, P), P ! stop, receive {'DOWN', M, _, _, _} -> ok end
    end.
