%% Idiom: an ops process that watches a busy gen_server through sys: it
%% turns sys:statistics on at start, then every 20 ms reads sys:get_state
%% (the queue depth the server keeps), every 100 ms sys:statistics(_, get)
%% and sys:get_status (as observer and LiveDashboard's process view do).
%% Mirrors: health checks and admin endpoints that peek at a GenServer's
%% state with :sys.get_state, in-house watchdogs reporting reductions and
%% message counts.
%% Traffic: an order book server taking ~800 casts/s and 100 calls/s, and
%% the poller's ~70 system requests/s.
-module(idiom_ops_poller).
-behaviour(gen_server).

-export([start/0, stop/0, procs/0]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2]).

-define(BOOK, idiom_ops_poller_book).
-define(OPS, idiom_ops_poller_ops).
-define(LOAD, idiom_ops_poller_load).

start() ->
    {ok, _} = gen_server:start({local, ?BOOK}, ?MODULE, book, []),
    ok = sys:statistics(?BOOK, true),
    {ok, _} = gen_server:start({local, ?OPS}, ?MODULE, ops, []),
    register(?LOAD, spawn(fun() -> load(0) end)),
    ok.

stop() ->
    M = monitor(process, ?LOAD), ?LOAD ! stop,
    receive {'DOWN', M, _, _, _} -> ok end,
    [gen_server:stop(N) || N <- [?OPS, ?BOOK]],
    ok.

procs() -> [P || N <- [?BOOK, ?OPS, ?LOAD], P <- [whereis(N)], is_pid(P)].

load(N) ->
    receive stop -> ok
    after 2 ->
        gen_server:cast(?BOOK, {order, N rem 2, 100 + N rem 13, 1 + N rem 5}),
        gen_server:cast(?BOOK, {order, (N + 1) rem 2, 100 + N rem 11, 1}),
        _ = N rem 5 =:= 0 andalso gen_server:call(?BOOK, best),
        load(N + 1)
    end.

init(book) -> {ok, #{bids => #{}, asks => #{}, trades => 0}};
init(ops) ->
    erlang:send_after(20, self(), poll),
    {ok, #{polls => 0, last => undefined}}.

handle_call(best, _From, S = #{bids := B, asks := A}) ->
    {reply, {best(B, fun erlang:max/2), best(A, fun erlang:min/2)}, S}.

handle_cast({order, 0, Price, Qty}, S = #{bids := B}) -> {noreply, match(S#{bids := add(B, Price, Qty)})};
handle_cast({order, 1, Price, Qty}, S = #{asks := A}) -> {noreply, match(S#{asks := add(A, Price, Qty)})}.

handle_info(poll, S = #{polls := P}) ->
    erlang:send_after(20, self(), poll),
    #{trades := T} = sys:get_state(?BOOK),
    Extra = case P rem 5 of
                0 -> {ok, Stats} = sys:statistics(?BOOK, get), proplists:get_value(messages_in, Stats);
                1 -> {status, _, _, _} = sys:get_status(?BOOK), status;
                _ -> none
            end,
    {noreply, S#{polls := P + 1, last := {T, Extra}}}.

add(Side, Price, Qty) -> maps:update_with(Price, fun(Q) -> Q + Qty end, Qty, Side).

best(Side, _Pick) when map_size(Side) =:= 0 -> none;
best(Side, Pick) -> lists:foldl(Pick, hd(maps:keys(Side)), maps:keys(Side)).

%% cross the book: a bid at or above the lowest ask trades
match(S = #{bids := B, asks := A, trades := T}) ->
    case {best(B, fun erlang:max/2), best(A, fun erlang:min/2)} of
        {Bid, Ask} when is_integer(Bid), is_integer(Ask), Bid >= Ask ->
            match(S#{bids := maps:remove(Bid, B), asks := maps:remove(Ask, A), trades := T + 1});
        _ -> S
    end.
