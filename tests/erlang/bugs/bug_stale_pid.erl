%% Bug: a stale pid. A metrics reporter looks up the counter store's pid once,
%% in its init, and keeps it in its state; every page hit is a cast to that
%% pid. When the store crashes, its supervisor restarts it under the same name
%% with a new pid, but the reporter still casts to the old, dead one:
%% gen_server:cast to a dead pid succeeds silently, so every hit after the
%% restart vanishes and the store's counts stay at zero.
%% Mirrors: clients that cache `whereis(Name)` / `Process.whereis` (or a pid
%% handed over at start, or pids cached in an ETS lookup table) instead of
%% addressing the server by name or monitoring it: statsd/telemetry
%% reporters, connection caches, "registry" maps of worker pids.
%% Traffic: a hit every 10 ms (~100/s) cast by the reporter; a dashboard
%% poller reads the totals from the store (by name) every 100 ms.
%% Trigger: the store crashes once (a bad hit record: badarith) and is
%% restarted by its supervisor.
%% Evidence: after the restart the reporter keeps casting to the dead pid
%% (sends to a non-existing process); the new store never receives a hit and
%% the dashboard sees its totals stuck at 0 while the reporter's sent count
%% climbs.
%% Root cause: the reporter caches the store's pid at start and never notices
%% the store was restarted with a new pid.
-module(bug_stale_pid).
-behaviour(gen_server).

-export([start/0, stop/0, procs/0, trigger/0]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2, start_store/0]).

-define(SUP, bug_stale_pid_sup).
-define(STORE, bug_stale_pid_store).
-define(REPORTER, bug_stale_pid_reporter).
-define(DASH, bug_stale_pid_dashboard).

start() ->
    {ok, Sup} = supervisor:start_link({local, ?SUP}, ?MODULE, sup),
    unlink(Sup),
    {ok, _} = gen_server:start({local, ?REPORTER}, ?MODULE, reporter, []),
    {ok, _} = gen_server:start({local, ?DASH}, ?MODULE, dashboard, []),
    ok.

%% a hit record the store cannot add up: it crashes once
trigger() -> gen_server:cast(?STORE, {hit, <<"/checkout">>, undefined}), ok.

stop() ->
    [catch gen_server:stop(N) || N <- [?DASH, ?REPORTER, ?SUP], whereis(N) =/= undefined],
    ok.

procs() -> [P || N <- [?SUP, ?STORE, ?REPORTER, ?DASH], P <- [whereis(N)], is_pid(P)].

start_store() -> gen_server:start_link({local, ?STORE}, ?MODULE, store, []).

init(sup) ->
    {ok, {#{strategy => one_for_one, intensity => 5, period => 10},
          [#{id => store, start => {?MODULE, start_store, []}}]}};
init(store) ->
    {ok, #{hits => #{}, total => 0}};
init(reporter) ->
    %% the store's pid, looked up once
    Store = whereis(?STORE),
    erlang:send_after(10, self(), tick),
    {ok, #{store => Store, sent => 0, pages => [<<"/">>, <<"/search">>, <<"/cart">>]}};
init(dashboard) ->
    erlang:send_after(100, self(), poll),
    {ok, #{last => 0}}.

%% store
handle_call(totals, _From, S = #{total := T, hits := H}) ->
    {reply, {T, H}, S};
%% reporter
handle_call(sent, _From, S = #{sent := N}) ->
    {reply, N, S}.

handle_cast({hit, Page, Count}, S = #{hits := H, total := T}) ->
    {noreply, S#{hits := maps:update_with(Page, fun(C) -> C + Count end, Count, H),
                 total := T + Count}}.

handle_info(tick, S = #{store := Store, sent := N, pages := Pages}) ->
    erlang:send_after(10, self(), tick),
    Page = lists:nth(N rem length(Pages) + 1, Pages),
    gen_server:cast(Store, {hit, Page, 1}),
    {noreply, S#{sent := N + 1}};
handle_info(poll, S = #{last := Last}) ->
    erlang:send_after(100, self(), poll),
    Total = case catch gen_server:call(?STORE, totals, 500) of
                {T, _} -> T;
                _ -> Last
            end,
    {noreply, S#{last := Total}}.
