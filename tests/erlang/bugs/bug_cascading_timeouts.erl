%% Bug: cascading timeouts. An order goes web handler -> api -> orders ->
%% inventory, each hop a synchronous request with a 1 s timeout: the api
%% calls orders with gen_server:call(..., 1000), orders asks inventory with
%% gen_server:send_request + wait_response(..., 1000). Inventory answers in
%% microseconds, except for a SKU kept in cold storage, whose stock check
%% takes 1.2 s. That one slow request makes orders wait past its 1 s budget,
%% the api gives up at the same moment (its timeout is no longer than the one
%% below it), the web handler's call times out too, and every order that
%% arrived in the meantime queues behind the stall and times out as well.
%% When inventory finally answers, orders has already given up: the late
%% reply lands in its mailbox as an unexpected message.
%% Mirrors: layered services (API -> domain server -> repo/pool) with equal
%% per-hop timeouts, gen_server:call with default or copied 5 s/1 s timeouts,
%% send_request/wait_response (or catch-ed calls on older OTP) leaving
%% late replies behind.
%% Traffic: a web handler process per order every 40 ms (~25/s), each
%% calling the api with a 1 s timeout.
%% Trigger: one order for the cold-storage SKU.
%% Evidence: inventory busy for 1.2 s in one handle_call; orders blocked in
%% wait_response for 1 s, then returning {error, timeout}; the api's call
%% to orders timing out at the same moment; a burst of web handler calls
%% exiting with timeout; 200 ms later a reply from inventory arriving at
%% orders and logged as unexpected.
%% Root cause: the inventory's cold-storage lookup (1.2 s) exceeds every
%% hop's 1 s timeout, so the delay turns into a timeout at each layer above
%% it, and requests queued behind it time out too.
-module(bug_cascading_timeouts).
-behaviour(gen_server).

-export([start/0, stop/0, procs/0, trigger/0]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2]).

-define(API, bug_cascading_timeouts_api).
-define(ORDERS, bug_cascading_timeouts_orders).
-define(INVENTORY, bug_cascading_timeouts_inventory).
-define(WEB, bug_cascading_timeouts_web).
-define(COLD_SKU, <<"SKU-ARCHIVE-0042">>).

start() ->
    [{ok, _} = gen_server:start({local, N}, ?MODULE, N, []) || N <- [?INVENTORY, ?ORDERS, ?API]],
    register(?WEB, proc_lib:spawn(fun() -> web(0) end)),
    ok.

trigger() -> proc_lib:spawn(fun() -> place_order(?COLD_SKU) end), ok.

stop() ->
    case whereis(?WEB) of undefined -> ok; W -> exit(W, kill) end,
    [catch gen_server:stop(N) || N <- [?API, ?ORDERS, ?INVENTORY], whereis(N) =/= undefined],
    ok.

procs() -> [P || N <- [?API, ?ORDERS, ?INVENTORY, ?WEB], P <- [whereis(N)], is_pid(P)].

%% the web tier: one handler process per order
web(N) ->
    receive after 40 -> ok end,
    Sku = list_to_binary(io_lib:format("SKU-~4..0b", [N rem 50])),
    proc_lib:spawn(fun() -> place_order(Sku) end),
    web(N + 1).

place_order(Sku) ->
    try gen_server:call(?API, {place_order, Sku, 1}, 1000)
    catch exit:{timeout, _} ->
        logger:warning("order for ~s: 504, the api did not answer within 1 s", [Sku]),
        {error, timeout}
    end.

init(?INVENTORY) -> {ok, #{stock => #{}}};
init(?ORDERS) -> {ok, #{seq => 0}};
init(?API) -> {ok, #{}}.

%% api
handle_call({place_order, Sku, Qty}, _From, S) when map_size(S) =:= 0 ->
    Reply = try gen_server:call(?ORDERS, {create, Sku, Qty}, 1000)
            catch exit:{timeout, _} -> {error, timeout}
            end,
    {reply, Reply, S};
%% orders
handle_call({create, Sku, Qty}, _From, S = #{seq := Seq}) ->
    ReqId = gen_server:send_request(?INVENTORY, {reserve, Sku, Qty}),
    case gen_server:wait_response(ReqId, 1000) of
        {reply, ok} -> {reply, {ok, Seq + 1}, S#{seq := Seq + 1}};
        {reply, Error} -> {reply, Error, S};
        timeout -> {reply, {error, inventory_timeout}, S}
    end;
%% inventory
handle_call({reserve, Sku, Qty}, _From, S = #{stock := Stock}) ->
    case Sku of
        ?COLD_SKU -> timer:sleep(1200);      % the cold-storage lookup
        _ -> ok
    end,
    {reply, ok, S#{stock := maps:update_with(Sku, fun(V) -> V + Qty end, Qty, Stock)}}.

handle_cast(_Msg, S) -> {noreply, S}.

handle_info(Msg, S) ->
    logger:warning("~p: unexpected message ~0p", [element(2, process_info(self(), registered_name)), Msg]),
    {noreply, S}.
