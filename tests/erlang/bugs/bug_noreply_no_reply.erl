%% Bug: a deferred reply that is never sent. The report server renders reports
%% in worker processes and answers the caller later: handle_call returns
%% {noreply, S} and the From is kept in `waiting`; gen_server:reply is called
%% when the worker's result comes back. Requests for a report that is already
%% being rendered were meant to wait for the same result ("it will reply when
%% the render finishes"), but that branch returns {noreply, S} without adding
%% the caller's From to the waiting list: nobody ever replies to it, and the
%% caller's gen_server:call exits with timeout after 1 s.
%% Mirrors: request coalescing / single-flight caches, job schedulers and
%% connection pools that defer replies (noreply + gen_server:reply later)
%% and lose a From on one branch (dedupe, error, queue full).
%% Traffic: a dashboard renders one report after another, 30 ms apart (each
%% render 20-40 ms in a worker: ~16 calls/s).
%% Trigger: four users open the same new report at the same moment.
%% Evidence: the first caller is answered after ~40 ms; the other three
%% calls get no reply (no gen_server:reply for their From) and exit with
%% {timeout, {gen_server, call, [bug_noreply_no_reply_reports, {render, ...}, 1000]}}
%% 1 s later; the server itself is idle and healthy throughout.
%% Root cause: handle_call returns {noreply, S} for a report already being
%% rendered without recording From, so gen_server:reply is never called for
%% those callers.
-module(bug_noreply_no_reply).
-behaviour(gen_server).

-export([start/0, stop/0, procs/0, trigger/0]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2]).

-define(REPORTS, bug_noreply_no_reply_reports).
-define(DASHBOARD, bug_noreply_no_reply_dashboard).

start() ->
    {ok, _} = gen_server:start({local, ?REPORTS}, ?MODULE, [], []),
    register(?DASHBOARD, proc_lib:spawn(fun() -> dashboard(0) end)),
    ok.

trigger() ->
    [proc_lib:spawn(fun() -> open_report(User, {quarterly, 2026, q3}) end)
     || User <- [ana, ben, chen, dora]],
    ok.

stop() ->
    case whereis(?DASHBOARD) of undefined -> ok; D -> exit(D, kill) end,
    [catch gen_server:stop(?REPORTS) || whereis(?REPORTS) =/= undefined],
    ok.

procs() -> [P || N <- [?REPORTS, ?DASHBOARD], P <- [whereis(N)], is_pid(P)].

open_report(User, Id) ->
    try gen_server:call(?REPORTS, {render, Id}, 1000) of
        {ok, _Pdf} -> ok
    catch exit:{timeout, _} = Reason ->
        logger:error("user ~p: report ~p failed: ~0p", [User, Id, Reason])
    end.

dashboard(N) ->
    receive after 30 -> ok end,
    {ok, _} = gen_server:call(?REPORTS, {render, {daily, N}}, 1000),
    dashboard(N + 1).

init([]) -> {ok, #{rendering => #{}, rendered => 0}}.

handle_call({render, Id}, From, S = #{rendering := R}) ->
    case R of
        #{Id := _Waiting} ->
            %% already rendering: this caller gets the same result when it is done
            {noreply, S};
        _ ->
            Server = self(),
            proc_lib:spawn(fun() -> Server ! {rendered, Id, render(Id)} end),
            {noreply, S#{rendering := R#{Id => [From]}}}
    end.

handle_cast(_Msg, S) -> {noreply, S}.

handle_info({rendered, Id, Pdf}, S = #{rendering := R, rendered := N}) ->
    {Waiting, R1} = maps:take(Id, R),
    [gen_server:reply(From, {ok, Pdf}) || From <- Waiting],
    {noreply, S#{rendering := R1, rendered := N + 1}}.

render(Id) ->
    timer:sleep(20 + erlang:phash2(Id, 20)),
    term_to_binary({pdf, Id}).
