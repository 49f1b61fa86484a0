%% The node's own log, for tests/integration/test_logs.py: a worker that logs
%% what it saw and crashes when told to, under a supervisor that gives up at
%% its second failure within 5 s (intensity 1), and a flood of log lines.
-module(mic_logs).
-behaviour(supervisor).

-export([start/0, fail/1, flood/1, init/1, start_worker/0]).

-define(SUP, mic_logs_sup).
-define(WORKER, mic_logs_worker).

%% The supervisor's pid; it outlives the rpc that started it.
start() ->
    {ok, Sup} = supervisor:start_link({local, ?SUP}, ?MODULE, []),
    unlink(Sup),
    Sup.

init([]) ->
    {ok, {#{strategy => one_for_one, intensity => 1, period => 5},
          [#{id => ledger, start => {?MODULE, start_worker, []}}]}}.

%% Its initial call is erlang:apply/2, not a fun of this module: the agent
%% takes a process whose initial call is in a supervisor callback module for
%% a supervisor, and asks it for its children (which this worker never answers).
start_worker() ->
    {ok, proc_lib:spawn_link(erlang, apply, [fun() -> register(?WORKER, self()), loop() end, []])}.

loop() ->
    receive
        {fail, Why} ->
            logger:error("ledger: sent ~p, table says ~p", [3, 2]),
            exit(Why)
    end.

%% The worker logs, then crashes with Why; returns the pid that did.
fail(Why) ->
    Worker = whereis(?WORKER),
    Ref = monitor(process, Worker),
    Worker ! {fail, Why},
    receive {'DOWN', Ref, process, Worker, _} -> Worker end.

%% N notice lines as fast as logger takes them; how long it took (ms).
flood(N) ->
    T0 = erlang:monotonic_time(millisecond),
    [logger:notice("flood ~p", [I]) || I <- lists:seq(1, N)],
    erlang:monotonic_time(millisecond) - T0.
