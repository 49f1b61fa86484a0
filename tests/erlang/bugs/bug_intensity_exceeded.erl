%% Bug: restart intensity exceeded, up the tree. Three repository connections
%% live under a one_for_one pool supervisor (intensity 3 in 5 s), itself
%% under the service's top supervisor (intensity 1 in 5 s). Each connection
%% checks out a session from the database process in init and pings it every
%% 50 ms. When the database goes away, every ping crashes its connection, and
%% every restart crashes again at once in init (the checkout badmatches on
%% {error, noproc}); the pool supervisor exceeds its intensity within
%% milliseconds and shuts down, the top supervisor restarts it once, it dies
%% the same way, and the top supervisor exceeds its own intensity and gives
%% up too: the whole subtree (top, pool, connections) is gone and stays gone,
%% though the database was only briefly unavailable.
%% Mirrors: Ecto/DBConnection or Redix connection pools, brod/kafka clients,
%% any worker that crashes when its dependency is down (instead of backing
%% off) under supervisors with the default-ish low intensities.
%% Traffic: three connections pinging every 50 ms (~60 calls/s to the db).
%% Trigger: the database process stops (it is restarted 500 ms later by its
%% own keeper, too late).
%% Evidence: crash reports of the connections (noproc, then badmatch in
%% init), supervisor reports "reached_max_restart_intensity" for the pool
%% supervisor, then for the top one; afterwards whereis of top, pool and
%% connections is undefined while the database is back.
%% Root cause: the connections crash (and crash again on restart) while
%% their dependency is down, so the supervisors' restart intensity is used up
%% in milliseconds and the supervision tree shuts itself down.
-module(bug_intensity_exceeded).
-behaviour(supervisor).

-export([start/0, stop/0, procs/0, trigger/0]).
-export([init/1, start_conn/1, conn_init/1, db_loop/1]).

-define(TOP, bug_intensity_exceeded_top).
-define(POOL, bug_intensity_exceeded_pool_sup).
-define(DB, bug_intensity_exceeded_db).
-define(CONNS, [bug_intensity_exceeded_conn_1, bug_intensity_exceeded_conn_2,
                bug_intensity_exceeded_conn_3]).

start() ->
    start_db(),
    {ok, Top} = supervisor:start_link({local, ?TOP}, ?MODULE, top),
    unlink(Top),
    ok.

%% the database restarts (a failover): down for 500 ms
trigger() ->
    case whereis(?DB) of undefined -> ok; Db -> Db ! stop end,
    proc_lib:spawn(fun() -> timer:sleep(500), start_db() end),
    ok.

stop() ->
    case whereis(?TOP) of
        undefined -> ok;
        Top -> M = monitor(process, Top), exit(Top, shutdown),
               receive {'DOWN', M, _, _, _} -> ok end
    end,
    case whereis(?DB) of undefined -> ok; Db -> Db ! stop end,
    ok.

procs() -> [P || N <- [?TOP, ?POOL, ?DB | ?CONNS], P <- [whereis(N)], is_pid(P)].

init(top) ->
    {ok, {#{strategy => one_for_one, intensity => 1, period => 5},
          [#{id => pool, type => supervisor,
             start => {supervisor, start_link, [{local, ?POOL}, ?MODULE, pool]}}]}};
init(pool) ->
    {ok, {#{strategy => one_for_one, intensity => 3, period => 5},
          [#{id => Name, start => {?MODULE, start_conn, [Name]}} || Name <- ?CONNS]}}.

%% the repository connections (proc_lib workers)
start_conn(Name) -> proc_lib:start_link(?MODULE, conn_init, [Name]).

conn_init(Name) ->
    register(Name, self()),
    {ok, Session} = checkout(),
    proc_lib:init_ack({ok, self()}),
    conn_loop(Session).

conn_loop(Session) ->
    receive after 50 -> ok end,
    {ok, pong} = db_call({ping, Session}),
    conn_loop(Session).

checkout() -> db_call(checkout).

db_call(Req) ->
    case whereis(?DB) of
        undefined -> {error, noproc};
        Db ->
            Ref = monitor(process, Db),
            Db ! {Req, self(), Ref},
            receive
                {Ref, Reply} -> demonitor(Ref, [flush]), Reply;
                {'DOWN', Ref, _, _, Reason} -> {error, Reason}
            end
    end.

%% the database
start_db() -> register(?DB, proc_lib:spawn(?MODULE, db_loop, [0])).

db_loop(N) ->
    receive
        stop -> ok;
        {checkout, From, Ref} -> From ! {Ref, {ok, N}}, db_loop(N + 1);
        {{ping, _S}, From, Ref} -> From ! {Ref, {ok, pong}}, db_loop(N)
    end.
