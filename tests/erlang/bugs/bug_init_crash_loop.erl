%% Bug: a worker whose init/1 crashes, restarted forever. The connection pool
%% reads its settings from the config table in init/1
%% (`[{pool_size, N}] = ets:lookup(Config, pool_size)`). A config reload
%% loads a new file in which the key was renamed (`poolsize`) and asks the
%% pool to restart to pick it up; from then on every start of the pool
%% crashes in init with a badmatch on []. The pool's keeper (a hand-written
%% restarter with a fixed 200 ms backoff that never gives up) starts it again
%% and again: a crash every ~200 ms for as long as the node runs, and every
%% checkout in the meantime fails with noproc.
%% Mirrors: "connection manager" / "keeper" processes that restart a worker
%% with a backoff (Process.send_after(self(), :retry, ms)), DBConnection's
%% and many client libraries' reconnect loops; a permanent child with a high
%% supervisor intensity crash-looping on bad config the same way.
%% Traffic: a client checks out from the pool every 20 ms (~50 calls/s).
%% Trigger: the config reload (the renamed key) and the pool's restart.
%% Evidence: a crash report of the pool's init every ~200 ms ({badmatch, []}
%% in init/1, initial call bug_init_crash_loop:init/1), a new pid each time,
%% the keeper's restart count climbing, the client's checkouts all failing
%% (noproc), the config table holding poolsize but no pool_size.
%% Root cause: the pool's init/1 requires a config key that the reloaded
%% config no longer has, so every restart crashes in init and the keeper
%% restarts it in an endless loop.
-module(bug_init_crash_loop).
-behaviour(gen_server).

-export([start/0, stop/0, procs/0, trigger/0]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2]).

-define(CONFIG, bug_init_crash_loop_config).
-define(KEEPER, bug_init_crash_loop_keeper).
-define(POOL, bug_init_crash_loop_pool).
-define(CLIENT, bug_init_crash_loop_client).
-define(BACKOFF, 200).

start() ->
    {ok, _} = gen_server:start({local, ?CONFIG}, ?MODULE, config, []),
    {ok, _} = gen_server:start({local, ?KEEPER}, ?MODULE, keeper, []),
    register(?CLIENT, proc_lib:spawn(fun() -> client(#{ok => 0, failed => 0}) end)),
    ok.

%% a config reload: the new file spells the key differently
trigger() ->
    ok = gen_server:call(?CONFIG, {reload, [{poolsize, 8}, {host, "db.internal"}]}),
    gen_server:cast(?POOL, reload),
    ok.

stop() ->
    case whereis(?CLIENT) of undefined -> ok; C -> exit(C, kill) end,
    [catch gen_server:stop(N) || N <- [?KEEPER, ?POOL, ?CONFIG], whereis(N) =/= undefined],
    ok.

procs() -> [P || N <- [?CONFIG, ?KEEPER, ?POOL, ?CLIENT], P <- [whereis(N)], is_pid(P)].

client(Stats) ->
    receive after 20 -> ok end,
    Key = try gen_server:call(?POOL, checkout, 500) of {ok, _} -> ok
          catch exit:_ -> failed
          end,
    client(maps:update_with(Key, fun(N) -> N + 1 end, Stats)).

%% the config owner
init(config) ->
    ets:new(?CONFIG, [named_table, protected, {read_concurrency, true}]),
    ets:insert(?CONFIG, [{pool_size, 8}, {host, "db.internal"}]),
    {ok, #{}};
%% the keeper: starts the pool and restarts it after a backoff when it goes
init(keeper) ->
    self() ! start_pool,
    {ok, #{pool => undefined, restarts => 0}};
%% the pool
init(pool) ->
    [{pool_size, Size}] = ets:lookup(?CONFIG, pool_size),
    [{host, Host}] = ets:lookup(?CONFIG, host),
    {ok, #{size => Size, host => Host, free => lists:seq(1, Size)}}.

handle_call({reload, Settings}, _From, S) ->
    ets:delete_all_objects(?CONFIG),
    ets:insert(?CONFIG, Settings),
    {reply, ok, S};
handle_call(checkout, _From, S = #{free := [C | Rest]}) ->
    {reply, {ok, C}, S#{free := Rest ++ [C]}};
handle_call(restarts, _From, S = #{restarts := R}) ->
    {reply, R, S}.

%% the pool restarts itself to pick up new settings
handle_cast(reload, S) -> {stop, {shutdown, reload}, S}.

handle_info(start_pool, S = #{restarts := R}) ->
    case gen_server:start({local, ?POOL}, ?MODULE, pool, []) of
        {ok, Pid} ->
            monitor(process, Pid),
            {noreply, S#{pool := Pid}};
        {error, Reason} ->
            logger:warning("pool failed to start: ~0p; retrying in ~b ms", [Reason, ?BACKOFF]),
            erlang:send_after(?BACKOFF, self(), start_pool),
            {noreply, S#{pool := undefined, restarts := R + 1}}
    end;
handle_info({'DOWN', _, process, Pid, _Reason}, S = #{pool := Pid}) ->
    erlang:send_after(?BACKOFF, self(), start_pool),
    {noreply, S#{pool := undefined}}.
