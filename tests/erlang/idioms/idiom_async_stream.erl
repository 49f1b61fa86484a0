%% Idiom: a Task.async_stream-like fan-out: a batch of items, each run in its
%% own short-lived worker (spawn_monitor), at most 4 at a time; results are
%% emitted in input order, each worker's monitor dropped with
%% erlang:demonitor(Ref, [flush]) once its result is in.
%% Mirrors: a periodic job doing Task.async_stream(urls, &fetch/1,
%% max_concurrency: 4) and reducing the results (a crawler, a price refresh).
%% Traffic: a batch of 16 every 25 ms (~640 workers/s), each worker sleeping
%% about a millisecond half of the time (the I/O it stands for).
-module(idiom_async_stream).
-behaviour(gen_server).

-export([start/0, stop/0, procs/0]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2]).

-define(JOB, idiom_async_stream_refresher).
-define(PRICES, idiom_async_stream_prices).

start() ->
    {ok, _} = gen_server:start({local, ?PRICES}, ?MODULE, prices, []),
    {ok, _} = gen_server:start({local, ?JOB}, ?MODULE, refresher, []),
    ok.

stop() ->
    [gen_server:stop(N) || N <- [?JOB, ?PRICES]],
    ok.

procs() -> [P || N <- [?JOB, ?PRICES], P <- [whereis(N)], is_pid(P)].

%% async_stream(Items, Fun, MaxConcurrency) -> results in the order of Items
async_stream(Items, Fun, Max) ->
    stream(lists:zip(lists:seq(1, length(Items)), Items), Fun, Max, #{}, #{}, 1, []).

stream([], _Fun, _Max, Running, _Done, _Next, Acc) when map_size(Running) =:= 0 ->
    lists:reverse(Acc);
stream([{I, X} | Rest], Fun, Max, Running, Done, Next, Acc) when map_size(Running) < Max ->
    Parent = self(),
    {_Pid, Ref} = spawn_monitor(fun() -> Parent ! {self(), I, Fun(X)} end),
    stream(Rest, Fun, Max, Running#{Ref => I}, Done, Next, Acc);
stream(Pending, Fun, Max, Running, Done, Next, Acc) ->
    receive
        {Pid, I, Result} when is_pid(Pid) ->
            [Ref] = [R || {R, J} <- maps:to_list(Running), J =:= I],
            erlang:demonitor(Ref, [flush]),
            {Done1, Next1, Acc1} = emit(Done#{I => Result}, Next, Acc),
            stream(Pending, Fun, Max, maps:remove(Ref, Running), Done1, Next1, Acc1);
        {'DOWN', Ref, process, _, Reason} when is_map_key(Ref, Running) ->
            exit({Reason, async_stream})
    end.

emit(Done, Next, Acc) ->
    case maps:take(Next, Done) of
        {R, Done1} -> emit(Done1, Next + 1, [{ok, R} | Acc]);
        error -> {Done, Next, Acc}
    end.

init(prices) -> {ok, #{}};
init(refresher) ->
    erlang:send_after(25, self(), refresh),
    {ok, #{round => 0}}.

handle_call({price, Sku}, _From, Prices) -> {reply, maps:get(Sku, Prices, 100), Prices}.

handle_cast({prices, New}, Prices) -> {noreply, maps:merge(Prices, New)}.

handle_info(refresh, S = #{round := N}) ->
    erlang:send_after(25, self(), refresh),
    Skus = [(N * 16 + K) rem 200 || K <- lists:seq(1, 16)],
    Results = async_stream(Skus, fun fetch/1, 4),
    gen_server:cast(?PRICES, {prices, maps:from_list([R || {ok, R} <- Results])}),
    {noreply, S#{round := N + 1}}.

%% stands for an HTTP request: half of them wait about a millisecond
fetch(Sku) when Sku rem 2 =:= 0 -> timer:sleep(1), {Sku, Sku * 3};
fetch(Sku) -> {Sku, gen_server:call(?PRICES, {price, Sku}) + 1}.
