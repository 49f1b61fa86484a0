%% Idiom: Task.async / Task.await, written out as Elixir's Task does it.
%% async: proc_lib:spawn_link a worker, monitor it, hand it {Owner, Ref};
%% the worker sends {Ref, Result} and exits normal. await: receive {Ref, R}
%% then erlang:demonitor(Ref, [flush]) (the DOWN that may already be queued
%% is dropped without ever being received).
%% Mirrors: a search server that fans a query out to three backends with
%% Task.async + Task.await inside handle_call, and a plain process that
%% awaits one task at a time (a controller doing Task.async |> Task.await).
%% Traffic: 2 clients calling search every 10 ms (3 tasks each) + one plain
%% awaiting loop every 4 ms: ~850 tasks/s.
-module(idiom_task_await).
-behaviour(gen_server).

-export([start/0, stop/0, procs/0]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2]).

-define(SEARCH, idiom_task_await_search).
-define(INDEX, idiom_task_await_index).
-define(LOAD, idiom_task_await_load).

start() ->
    {ok, _} = gen_server:start({local, ?INDEX}, ?MODULE, index, []),
    {ok, _} = gen_server:start({local, ?SEARCH}, ?MODULE, search, []),
    start_load([fun() -> client(0) end, fun() -> client(1) end, fun() -> awaiter(0) end]),
    ok.

stop() ->
    stop_load(),
    [gen_server:stop(N) || N <- [?SEARCH, ?INDEX]],
    ok.

procs() -> [P || N <- [?SEARCH, ?INDEX, ?LOAD], P <- [whereis(N)], is_pid(P)].

%% Task.async/1 and Task.await/2
async(Fun) ->
    Owner = self(),
    Pid = proc_lib:spawn_link(fun() -> receive {Owner, Ref} -> Owner ! {Ref, Fun()} end end),
    Ref = erlang:monitor(process, Pid),
    Pid ! {Owner, Ref},
    {task, Pid, Ref}.

await({task, _Pid, Ref}, Timeout) ->
    receive
        {Ref, Reply} -> erlang:demonitor(Ref, [flush]), Reply;
        {'DOWN', Ref, process, _, Reason} -> exit({Reason, {task, await, [Ref, Timeout]}})
    after Timeout ->
        erlang:demonitor(Ref, [flush]),
        exit({timeout, {task, await, [Ref, Timeout]}})
    end.

client(N) ->
    receive stop -> ok
    after 10 ->
        {ok, [_, _, _]} = gen_server:call(?SEARCH, {search, N rem 40}),
        client(N + 1)
    end.

awaiter(N) ->
    receive stop -> ok
    after 4 ->
        Task = async(fun() -> erlang:phash2({N, make_ref()}) end),
        _ = await(Task, 5000),
        awaiter(N + 1)
    end.

init(index) -> {ok, maps:from_list([{K, K * K} || K <- lists:seq(0, 39)])};
init(search) -> {ok, #{searches => 0}}.

handle_call({search, Q}, _From, S = #{searches := N}) ->
    Tasks = [async(fun() -> backend(B, Q) end) || B <- [titles, bodies, tags]],
    Hits = [await(T, 5000) || T <- Tasks],
    {reply, {ok, Hits}, S#{searches := N + 1}};
handle_call({lookup, Q}, _From, Index) ->
    {reply, maps:get(Q, Index, 0), Index}.

backend(titles, Q) -> gen_server:call(?INDEX, {lookup, Q});
backend(bodies, Q) -> lists:sum(lists:seq(1, Q + 10));
backend(tags, Q) -> integer_to_binary(Q).

handle_cast(_Msg, S) -> {noreply, S}.
handle_info(_Msg, S) -> {noreply, S}.

start_load(Loops) ->
    register(?LOAD, spawn(fun() -> [spawn_link(L) || L <- Loops],
                                   receive stop -> exit(shutdown) end end)).

stop_load() ->
    case whereis(?LOAD) of
        undefined -> ok;
        P -> M = monitor(process, P), P ! stop, receive {'DOWN', M, _, _, _} -> ok end
    end.
