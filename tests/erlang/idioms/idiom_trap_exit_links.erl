%% Idiom: a process that traps exits and links to the short-lived workers
%% it starts; each worker's {'EXIT', Pid, normal} tells it the job is done
%% (an abnormal exit would mean the job failed and must be retried).
%% Mirrors: hand-rolled job runners and connection owners (the pattern
%% inside supervisor, ranch's conns_sup, Task.Supervisor's parent).
%% Traffic: jobs cast every 2 ms (~500 workers/s), each a little work and a
%% result message, then exit normal.
-module(idiom_trap_exit_links).
-behaviour(gen_server).

-export([start/0, stop/0, procs/0]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2]).

-define(RUNNER, idiom_trap_exit_links_runner).
-define(RESULTS, idiom_trap_exit_links_results).
-define(LOAD, idiom_trap_exit_links_load).

start() ->
    {ok, _} = gen_server:start({local, ?RESULTS}, ?MODULE, results, []),
    {ok, _} = gen_server:start({local, ?RUNNER}, ?MODULE, runner, []),
    register(?LOAD, spawn(fun() -> load(0) end)),
    ok.

stop() ->
    M = monitor(process, ?LOAD), ?LOAD ! stop,
    receive {'DOWN', M, _, _, _} -> ok end,
    [gen_server:stop(N) || N <- [?RUNNER, ?RESULTS]],
    ok.

procs() -> [P || N <- [?RUNNER, ?RESULTS, ?LOAD], P <- [whereis(N)], is_pid(P)].

load(N) ->
    receive stop -> ok
    after 2 -> gen_server:cast(?RUNNER, {job, N}), load(N + 1)
    end.

init(results) -> {ok, #{}};
init(runner) ->
    process_flag(trap_exit, true),
    {ok, #{running => #{}, done => 0, failed => 0}}.

handle_call(_Req, _From, S) -> {reply, ok, S}.

handle_cast({job, N}, S = #{running := R}) ->
    Pid = spawn_link(fun() -> gen_server:cast(?RESULTS, {result, N, erlang:phash2(N)}) end),
    {noreply, S#{running := R#{Pid => N}}};
handle_cast({result, N, V}, Results) ->
    {noreply, maps:remove(N - 100, Results#{N => V})}.

handle_info({'EXIT', Pid, normal}, S = #{running := R, done := D}) ->
    {noreply, S#{running := maps:remove(Pid, R), done := D + 1}};
handle_info({'EXIT', Pid, _Failed}, S = #{running := R, failed := F}) ->
    {N, R1} = maps:take(Pid, R),
    gen_server:cast(self(), {job, N}),
    {noreply, S#{running := R1, failed := F + 1}}.
