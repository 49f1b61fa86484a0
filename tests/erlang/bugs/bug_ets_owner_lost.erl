%% Bug: ETS table lost with its owner. A price catalogue lives in a named,
%% public ETS table read directly by the HTTP handlers. The table is created
%% by the sync process that loads the snapshot and then applies the live
%% price feed, so that process owns it, and no heir is set. When the feed
%% closes for its maintenance window, the sync process considers its job done
%% and returns (exit normal), and ETS deletes the table with its owner: the
%% whole catalogue vanishes, and every request handler that reads it now
%% crashes with badarg.
%% Mirrors: tables created in a Task/loader/short-lived process, in the
%% shell or an RPC, or in a worker that can crash, instead of in a long-lived
%% owner (or with {heir, ...}, or via an ETS manager process).
%% Traffic: ~60 price updates/s into the table; ~50 requests/s, one handler
%% process per request doing ets:lookup. trigger/0: the feed announces its
%% maintenance window.
%% Evidence: bug_ets_owner_lost_sync exits normal; right after,
%% ets:info(bug_ets_owner_lost_prices) is undefined; handler processes
%% exit with badarg from ets:lookup/2 ("Error in process ... badarg"), ~50/s,
%% and the http front's `served` count stops while `failed` climbs.
%% Root cause: the table's owner is a process that ends (normally) while
%% others still use the table, and with no heir the table is deleted with it.
-module(bug_ets_owner_lost).

-export([start/0, stop/0, procs/0, trigger/0]).
-export([sync/1]).

-define(TAB, bug_ets_owner_lost_prices).
-define(SYNC, bug_ets_owner_lost_sync).
-define(FEED, bug_ets_owner_lost_feed).
-define(HTTP, bug_ets_owner_lost_http).
-define(SKUS, 1000).

start() ->
    register(?FEED, spawn(fun() -> feed_init() end)),
    Sync = proc_lib:spawn(?MODULE, sync, [self()]),
    Ref = monitor(process, Sync),
    receive
        {loaded, Sync} -> demonitor(Ref, [flush]);
        {'DOWN', Ref, _, _, Why} -> error({sync_failed, Why})
    after 5000 -> error(sync_timeout)
    end,
    register(?HTTP, spawn(fun() -> http(#{served => 0, failed => 0, n => 0}) end)),
    ok.

trigger() ->
    ?FEED ! maintenance,
    ok.

stop() ->
    [case whereis(N) of
         undefined -> ok;
         P -> M = monitor(process, P), exit(P, shutdown), receive {'DOWN', M, _, _, _} -> ok end
     end || N <- [?HTTP, ?FEED, ?SYNC]],
    ok.

procs() -> [P || N <- [?SYNC, ?FEED, ?HTTP], P <- [whereis(N)], is_pid(P)].

%% the catalogue sync: load a snapshot into its table, then apply the feed
sync(Starter) ->
    register(?SYNC, self()),
    ets:new(?TAB, [named_table, public, set, {read_concurrency, true}]),
    ets:insert(?TAB, [{Sku, 1000 + Sku} || Sku <- lists:seq(1, ?SKUS)]),
    ?FEED ! {subscribe, self()},
    receive {subscribed, ?FEED} -> ok end,
    Starter ! {loaded, self()},
    apply_updates(0).

apply_updates(N) ->
    receive
        {price, Sku, Cents} ->
            ets:insert(?TAB, {Sku, Cents}),
            apply_updates(N + 1);
        {feed_closed, Why} ->
            logger:notice("price feed closed (~p) after ~p updates; sync done", [Why, N]),
            ok
    end.

%% the upstream price feed
feed_init() ->
    receive {subscribe, Sync} -> Sync ! {subscribed, ?FEED}, feed(Sync, 0) end.

feed(Sync, N) ->
    receive
        maintenance -> Sync ! {feed_closed, maintenance_window}, feed(undefined, N)
    after 16 ->
        Sync =/= undefined andalso (Sync ! {price, 1 + (N * 37) rem ?SKUS, 900 + N rem 300}),
        feed(Sync, N + 1)
    end.

%% the HTTP front: one handler process per request, reading the table directly
http(Stats = #{n := N}) ->
    receive
        {quoted, _Sku, _Price} -> http(maps:update_with(served, fun(V) -> V + 1 end, Stats));
        {'DOWN', _, process, _, normal} -> http(Stats);
        {'DOWN', _, process, _, _Crash} -> http(maps:update_with(failed, fun(V) -> V + 1 end, Stats))
    after 20 ->
        Front = self(),
        Sku = 1 + (N * 7) rem ?SKUS,
        spawn_monitor(fun() ->
            [{Sku, Price}] = ets:lookup(?TAB, Sku),
            Front ! {quoted, Sku, Price}
        end),
        http(Stats#{n := N + 1})
    end.
