%% Idiom: the timer module: timer:send_interval for polling, timer:apply_after
%% to schedule a retry, timer:send_after + timer:cancel for a per-job
%% watchdog that is cancelled when the job finishes in time.
%% Mirrors: a job poller that claims rows from a queue table every 20 ms
%% (Oban-like, here an ETS ordered_set), retries one job in ten 5 ms later,
%% and arms a watchdog per batch.
%% Traffic: a producer inserting ~500 jobs/s; a poll every 20 ms.
-module(idiom_interval_timer).
-behaviour(gen_server).

-export([start/0, stop/0, procs/0]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2]).

-define(POLLER, idiom_interval_timer_poller).
-define(LOAD, idiom_interval_timer_load).
-define(JOBS, idiom_interval_timer_jobs).

start() ->
    {ok, _} = gen_server:start({local, ?POLLER}, ?MODULE, poller, []),
    register(?LOAD, spawn(fun() -> producer(0) end)),
    ok.

stop() ->
    M = monitor(process, ?LOAD), ?LOAD ! stop,
    receive {'DOWN', M, _, _, _} -> ok end,
    gen_server:stop(?POLLER).

procs() -> [P || N <- [?POLLER, ?LOAD], P <- [whereis(N)], is_pid(P)].

producer(N) ->
    receive stop -> ok
    after 2 -> ets:insert(?JOBS, {N, {send_email, N}}), producer(N + 1)
    end.

init(poller) ->
    ets:new(?JOBS, [named_table, public, ordered_set]),
    {ok, Poll} = timer:send_interval(20, poll),
    {ok, #{poll => Poll, done => 0, retried => 0, watchdogs => 0}}.

handle_call(_Req, _From, S) -> {reply, ok, S}.

handle_cast({retry, Job}, S = #{retried := R}) ->
    perform(Job),
    {noreply, S#{retried := R + 1}}.

handle_info(poll, S = #{done := D}) ->
    Batch = claim(50),
    {ok, Watchdog} = timer:send_after(1000, {batch_overdue, length(Batch)}),
    [case Id rem 10 of
         0 -> {ok, _} = timer:apply_after(5, gen_server, cast, [?POLLER, {retry, Job}]);
         _ -> perform(Job)
     end || {Id, Job} <- Batch],
    {ok, cancel} = timer:cancel(Watchdog),
    {noreply, S#{done := D + length(Batch)}};
handle_info({batch_overdue, _N}, S = #{watchdogs := W}) ->
    {noreply, S#{watchdogs := W + 1}}.

claim(Max) ->
    case ets:select(?JOBS, [{'$1', [], ['$1']}], Max) of
        '$end_of_table' -> [];
        {Rows, _Cont} -> [ets:delete(?JOBS, Id) || {Id, _} <- Rows], Rows
    end.

perform({send_email, N}) -> erlang:phash2({mail, N}).
