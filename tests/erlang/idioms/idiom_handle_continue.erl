%% Idiom: gen_server {continue, Term}: init returns {ok, S, {continue,
%% load}} so the slow loading happens after start_link has returned, and
%% calls reply first and do their follow-up work in handle_continue (the
%% caller is not kept waiting for the index update). Also the older idiom it
%% replaced: init sending itself a message (self() ! warm_up).
%% Mirrors: Elixir GenServers with handle_continue for post-init loading
%% and post-reply work (catalog/search/indexing servers).
%% Traffic: 2 writers every 3 ms, a reader every 2 ms (~1200 calls/s); a
%% fresh catalog server is started (and stopped normally) every 100 ms.
-module(idiom_handle_continue).
-behaviour(gen_server).

-export([start/0, stop/0, procs/0]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2, handle_continue/2]).

-define(CATALOG, idiom_handle_continue_catalog).
-define(LOAD, idiom_handle_continue_load).

start() ->
    {ok, _} = gen_server:start({local, ?CATALOG}, ?MODULE, catalog, []),
    start_load([fun() -> writer(W, 0) end || W <- [1, 2]] ++ [fun() -> reader(0) end,
                                                               fun() -> reloader(0) end]),
    ok.

stop() -> stop_load(), gen_server:stop(?CATALOG).

procs() -> [P || N <- [?CATALOG, ?LOAD], P <- [whereis(N)], is_pid(P)].

writer(W, N) ->
    receive stop -> ok
    after 3 -> ok = gen_server:call(?CATALOG, {put, {W, N rem 100}, N}), writer(W, N + 1)
    end.

reader(N) ->
    receive stop -> ok
    after 2 -> _ = gen_server:call(?CATALOG, {count, N rem 100}), reader(N + 1)
    end.

%% a short-lived catalog for a preview: start, query, stop normally
reloader(N) ->
    receive stop -> ok
    after 100 ->
        {ok, P} = gen_server:start(?MODULE, {preview, N}, []),
        _ = gen_server:call(P, {count, 1}),
        ok = gen_server:stop(P),
        reloader(N + 1)
    end.

init(catalog) -> {ok, #{items => #{}, index => #{}, loaded => false}, {continue, load}};
init({preview, N}) ->
    self() ! warm_up,
    {ok, #{items => #{{0, 1} => N}, index => #{}, loaded => false}}.

handle_continue(load, S) ->
    Items = maps:from_list([{{0, K}, K} || K <- lists:seq(1, 200)]),
    {noreply, S#{items := Items, index := reindex(Items), loaded := true}};
handle_continue({index, {_W, K} = Key}, S = #{index := I, items := Items}) ->
    {noreply, S#{index := I#{K => maps:get(Key, Items)}}}.

handle_call({put, Key, V}, _From, S = #{items := Items}) ->
    {reply, ok, S#{items := Items#{Key => V}}, {continue, {index, Key}}};
handle_call({count, K}, _From, S = #{index := I}) ->
    {reply, maps:get(K, I, 0), S}.

handle_cast(_Msg, S) -> {noreply, S}.

handle_info(warm_up, S = #{items := Items}) ->
    {noreply, S#{index := reindex(Items), loaded := true}}.

reindex(Items) -> maps:from_list([{K, V} || {{_, K}, V} <- maps:to_list(Items)]).

start_load(Loops) ->
    register(?LOAD, spawn(fun() -> [spawn_link(L) || L <- Loops],
                                   receive stop -> exit(shutdown) end end)).

stop_load() ->
    case whereis(?LOAD) of
        undefined -> ok;
        P -> M = monitor(process, P), P ! stop, receive {'DOWN', M, _, _, _} -> ok end
    end.
