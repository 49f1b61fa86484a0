%% Idiom: a supervised task pool: a simple_one_for_one supervisor of
%% temporary workers (what Task.Supervisor and DynamicSupervisor are), fed by
%% a dispatcher. Most jobs finish and exit normal; jobs still running at
%% their deadline are cancelled with supervisor:terminate_child (shutdown),
%% as Task.Supervisor.terminate_child / Task.shutdown do.
%% Mirrors: background job execution (thumbnailing, webhooks) under a
%% Task.Supervisor with per-job deadlines.
%% Traffic: a job every 2 ms (~500 workers/s); one in 8 waits on a slow
%% upstream and is cancelled after 15 ms.
-module(idiom_task_pool).
-behaviour(supervisor).

-export([start/0, stop/0, procs/0]).
-export([init/1, start_worker/2, dispatcher/1]).

-define(SUP, idiom_task_pool_sup).
-define(DISPATCH, idiom_task_pool_dispatcher).

start() ->
    {ok, Sup} = supervisor:start_link({local, ?SUP}, ?MODULE, []),
    unlink(Sup),
    register(?DISPATCH, proc_lib:spawn(?MODULE, dispatcher, [0])),
    ok.

stop() ->
    M = monitor(process, ?DISPATCH),
    ?DISPATCH ! stop,
    receive {'DOWN', M, _, _, _} -> ok end,
    gen_server:stop(?SUP).

procs() -> [P || N <- [?SUP, ?DISPATCH], P <- [whereis(N)], is_pid(P)].

init([]) ->
    {ok, {#{strategy => simple_one_for_one, intensity => 3, period => 5},
          [#{id => job, start => {?MODULE, start_worker, []}, restart => temporary,
             shutdown => 100}]}}.

%% a Task.Supervisor child: does its job, reports, exits normal
start_worker(Owner, Job) ->
    {ok, proc_lib:spawn_link(fun() -> Owner ! {done, Job, run(Job)} end)}.

run(Job) when Job rem 8 =:= 0 -> receive never -> ok after 5000 -> slow end;
run(Job) -> erlang:phash2(lists:seq(1, 50 + Job rem 50)).

%% the dispatcher: starts a job every 2 ms, cancels those past their deadline
dispatcher(N) ->
    erlang:send_after(2, self(), tick),
    dispatch(N, #{}).

dispatch(N, Running) ->
    receive
        stop -> [supervisor:terminate_child(?SUP, P) || P <- maps:keys(Running)], ok;
        {done, _Job, _Result} ->
            dispatch(N, Running);
        {deadline, Pid} ->
            _ = supervisor:terminate_child(?SUP, Pid),
            dispatch(N, maps:remove(Pid, Running));
        tick ->
            erlang:send_after(2, self(), tick),
            {ok, Pid} = supervisor:start_child(?SUP, [self(), N]),
            Running1 = case N rem 8 of
                           0 -> erlang:send_after(15, self(), {deadline, Pid}), Running#{Pid => N};
                           _ -> Running
                       end,
            dispatch(N + 1, Running1)
    end.
