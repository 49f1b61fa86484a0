%% Bug: large messages on a hot path. A pricing dispatcher owns the tariff
%% table (20 000 zone/product rules, a map kept in its state) and hands each
%% incoming order to a pricing worker. To let the worker look rules up, it
%% sends the whole table along with every order: {price, Order, Rules}.
%% Messages between processes are copied, so every order copies the table
%% (~1.9 MB) out of the dispatcher's heap into the worker's, and the worker
%% then garbage-collects it away. The sender's and the workers' time goes to
%% copying and GC, and memory spikes with every order.
%% Mirrors: passing a whole state/config/ETS dump (Enum.to_list of a big
%% map, a full cache) in each message or Task closure instead of the key
%% the receiver needs, or instead of a shared ETS table / persistent_term.
%% Traffic: ~40 orders/s, round-robin over 2 workers.
%% Evidence: each {price, _, Rules} message is ~230 000 words
%% (erts_debug:flat_size); each worker holds a ~13 MB heap although the work
%% per order is a single map lookup; the node reclaims ~50 MB/s of garbage
%% (statistics(garbage_collection)); the dispatcher's and workers' time goes
%% to copying the message and collecting it.
%% Root cause: the dispatcher sends its whole rules table in every message, so
%% each order copies a huge term from heap to heap.
-module(bug_large_messages).
-behaviour(gen_server).

-export([start/0, stop/0, procs/0]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2]).

-define(DISPATCHER, bug_large_messages_dispatcher).
-define(WORKERS, [bug_large_messages_worker_1, bug_large_messages_worker_2]).
-define(SHOP, bug_large_messages_shop).

start() ->
    [{ok, _} = gen_server:start({local, W}, ?MODULE, worker, []) || W <- ?WORKERS],
    {ok, _} = gen_server:start({local, ?DISPATCHER}, ?MODULE, dispatcher, []),
    register(?SHOP, spawn(fun() -> shop(0) end)),
    ok.

stop() ->
    case whereis(?SHOP) of
        undefined -> ok;
        P -> M = monitor(process, P), P ! stop, receive {'DOWN', M, _, _, _} -> ok end
    end,
    [catch gen_server:stop(N) || N <- [?DISPATCHER | ?WORKERS]],
    ok.

procs() -> [P || N <- [?DISPATCHER, ?SHOP | ?WORKERS], P <- [whereis(N)], is_pid(P)].

%% the shop front: an order every ~25 ms
shop(N) ->
    receive
        stop -> ok;
        {priced, _OrderId, _Total} -> shop(N)
    after 25 ->
        Order = #{id => N, zone => N rem 200, product => (N * 31) rem 100, qty => 1 + N rem 4,
                  reply_to => self()},
        gen_server:cast(?DISPATCHER, {order, Order}),
        shop(N + 1)
    end.

init(dispatcher) ->
    Rules = maps:from_list([{{Zone, Product}, {tariff, 100 + (Zone * Product) rem 900, eur, 2025}}
                            || Zone <- lists:seq(0, 199), Product <- lists:seq(0, 99)]),
    {ok, #{rules => Rules, next => 0, dispatched => 0}};
init(worker) ->
    {ok, #{priced => 0}}.

handle_call(_Req, _From, S) -> {reply, ok, S}.

%% dispatcher: round-robin, with the tariff table attached "so the worker has it"
handle_cast({order, Order}, S = #{rules := Rules, next := Next, dispatched := D}) ->
    Worker = lists:nth(Next + 1, ?WORKERS),
    gen_server:cast(Worker, {price, Order, Rules}),
    {noreply, S#{next := (Next + 1) rem length(?WORKERS), dispatched := D + 1}};
%% worker: one lookup in the table it was sent
handle_cast({price, #{id := Id, zone := Z, product := P, qty := Q, reply_to := To}, Rules},
            S = #{priced := N}) ->
    {tariff, Price, _Currency, _Year} = maps:get({Z, P}, Rules),
    To ! {priced, Id, Price * Q},
    {noreply, S#{priced := N + 1}}.

handle_info(_Msg, S) -> {noreply, S}.
