%% Idiom: a poolboy-like worker pool. checkout (a call) hands out an idle
%% worker and monitors the borrower; with none idle the checkout waits
%% (the pool keeps From and replies later); checkin (a cast) returns the
%% worker, drops the borrower's monitor with demonitor(Ref, [flush]) and
%% gives the worker straight to the next waiting borrower if any.
%% Mirrors: poolboy, DBConnection's pool, pooler: checkout / use / checkin
%% around every database query.
%% Traffic: 6 clients, each a checkout + a ~1 ms query on the worker + a
%% checkin every 5 ms (~1000 checkouts/s over 4 workers: some wait).
-module(idiom_worker_pool).
-behaviour(gen_server).

-export([start/0, stop/0, procs/0]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2]).

-define(POOL, idiom_worker_pool_pool).
-define(LOAD, idiom_worker_pool_load).
-define(WORKERS, 4).

start() ->
    Workers = [begin {ok, W} = gen_server:start({local, worker(K)}, ?MODULE, {worker, K}, []), W end
               || K <- lists:seq(1, ?WORKERS)],
    {ok, _} = gen_server:start({local, ?POOL}, ?MODULE, {pool, Workers}, []),
    start_load([fun() -> client(C, 0) end || C <- lists:seq(1, 6)]),
    ok.

stop() ->
    stop_load(),
    [gen_server:stop(N) || N <- [?POOL | [worker(K) || K <- lists:seq(1, ?WORKERS)]]],
    ok.

procs() ->
    [P || N <- [?POOL, ?LOAD | [worker(K) || K <- lists:seq(1, ?WORKERS)]], P <- [whereis(N)], is_pid(P)].

worker(K) -> list_to_atom("idiom_worker_pool_worker" ++ integer_to_list(K)).

client(C, N) ->
    receive stop -> ok
    after 5 ->
        W = gen_server:call(?POOL, checkout),
        {ok, _Rows} = gen_server:call(W, {query, C, N}),
        gen_server:cast(?POOL, {checkin, W, self()}),
        client(C, N + 1)
    end.

init({worker, K}) -> {ok, #{id => K, queries => 0}};
init({pool, Workers}) -> {ok, #{idle => Workers, borrowed => #{}, waiting => queue:new()}}.

handle_call({query, C, N}, _From, S = #{queries := Q}) ->          % worker: ~1 ms of "SQL"
    timer:sleep(1),
    {reply, {ok, [{C, N}]}, S#{queries := Q + 1}};
handle_call(checkout, {Pid, _}, S = #{idle := [W | Idle], borrowed := B}) ->
    {reply, W, S#{idle := Idle, borrowed := B#{{W, Pid} => erlang:monitor(process, Pid)}}};
handle_call(checkout, From, S = #{idle := [], waiting := Q}) ->
    {noreply, S#{waiting := queue:in(From, Q)}}.

handle_cast({checkin, W, Pid}, S = #{borrowed := B, waiting := Q, idle := Idle}) ->
    {Ref, B1} = maps:take({W, Pid}, B),
    erlang:demonitor(Ref, [flush]),
    case queue:out(Q) of
        {{value, {Next, _} = From}, Q1} ->
            gen_server:reply(From, W),
            {noreply, S#{borrowed := B1#{{W, Next} => erlang:monitor(process, Next)}, waiting := Q1}};
        {empty, _} ->
            {noreply, S#{borrowed := B1, idle := [W | Idle]}}
    end.

handle_info({'DOWN', Ref, process, _, _}, S = #{borrowed := B, idle := Idle}) ->
    %% a borrower died holding a worker: take the worker back
    case [{K, W} || {{W, _} = K, R} <- maps:to_list(B), R =:= Ref] of
        [{K, W}] -> {noreply, S#{borrowed := maps:remove(K, B), idle := [W | Idle]}};
        [] -> {noreply, S}
    end.

start_load(Loops) ->
    register(?LOAD, spawn(fun() -> [spawn_link(L) || L <- Loops],
                                   receive stop -> exit(shutdown) end end)).

stop_load() ->
    case whereis(?LOAD) of
        undefined -> ok;
        P -> M = monitor(process, P), P ! stop, receive {'DOWN', M, _, _, _} -> ok end
    end.
