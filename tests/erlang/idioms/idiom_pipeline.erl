%% Idiom: a busy 3-stage pipeline running near (under) capacity: a source
%% pushes events to parse, parse to enrich, enrich to a sink that writes in
%% batches of 25 (a batched insert that takes ~18 ms, here a sleep). At
%% ~1000 events/s the sink is busy ~70% of the time, so its mailbox fills
%% during each write and drains after; parse and enrich do real CPU work
%% (~60 and ~150 us an event).
%% Mirrors: ingestion pipelines (log/metric/event processors) built from
%% plain GenServers before reaching for GenStage/Broadway.
%% Traffic: 5 events every 5 ms into the first stage (~1000/s, ~4000
%% messages/s through the stages).
-module(idiom_pipeline).
-behaviour(gen_server).

-export([start/0, stop/0, procs/0]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2]).

-define(SOURCE, idiom_pipeline_source).
-define(PARSE, idiom_pipeline_parse).
-define(ENRICH, idiom_pipeline_enrich).
-define(SINK, idiom_pipeline_sink).
-define(BATCH, 25).

start() ->
    [{ok, _} = gen_server:start({local, N}, ?MODULE, N, []) || N <- [?SINK, ?ENRICH, ?PARSE, ?SOURCE]],
    ok.

stop() -> [gen_server:stop(N) || N <- [?SOURCE, ?PARSE, ?ENRICH, ?SINK]], ok.

procs() -> [P || N <- [?SOURCE, ?PARSE, ?ENRICH, ?SINK], P <- [whereis(N)], is_pid(P)].

init(?SOURCE) -> erlang:send_after(5, self(), emit), {ok, 0};
init(?SINK) -> {ok, #{batch => [], written => 0}};
init(_Stage) -> {ok, #{seen => 0}}.

handle_call(_Req, _From, S) -> {reply, ok, S}.

handle_cast({raw, Bin}, S = #{seen := N}) ->                   % parse
    burn(60),
    gen_server:cast(?ENRICH, {event, binary_to_term(Bin)}),
    {noreply, S#{seen := N + 1}};
handle_cast({event, E = #{user := U}}, S = #{seen := N}) ->    % enrich
    burn(150),
    gen_server:cast(?SINK, {row, E#{region => U rem 7}}),
    {noreply, S#{seen := N + 1}};
handle_cast({row, Row}, S = #{batch := B, written := W}) when length(B) + 1 >= ?BATCH ->
    write([Row | B]),                                           % sink
    {noreply, S#{batch := [], written := W + ?BATCH}};
handle_cast({row, Row}, S = #{batch := B}) ->
    {noreply, S#{batch := [Row | B]}}.

handle_info(emit, N) ->                                         % source
    erlang:send_after(5, self(), emit),
    [gen_server:cast(?PARSE, {raw, term_to_binary(#{id => N + K, user => (N + K) rem 100,
                                                    path => <<"/api/items">>})})
     || K <- lists:seq(1, 5)],
    {noreply, N + 5}.

%% a batched insert: the database takes ~18 ms
write(_Rows) -> timer:sleep(18).

%% CPU work for about Us microseconds
burn(Us) ->
    Until = erlang:monotonic_time(microsecond) + Us,
    spin(Until, 0).

spin(Until, X) ->
    case erlang:monotonic_time(microsecond) >= Until of
        true -> X;
        false -> spin(Until, erlang:phash2(X + 1))
    end.
