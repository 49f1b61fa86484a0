%% Bug: linked workers without trap_exit. A thumbnail service's job runner
%% (a gen_server under a supervisor) spawn_links one worker per upload, so
%% that "workers die with the runner", and tracks the running jobs and its
%% counters in its state. It never sets trap_exit. When one worker crashes on
%% a corrupt image, the exit signal kills the runner too: its state (running
%% jobs, completed count) is gone, every other in-flight worker is killed by
%% the runner's own exit, and the supervisor restarts an empty runner.
%% Mirrors: hand-rolled worker pools and job runners using spawn_link (or
%% Task.async from a GenServer) for fire-and-forget work, without
%% process_flag(trap_exit, true) or spawn_monitor.
%% Traffic: ~100 uploads/s, each resized by a short-lived worker (~20 ms).
%% trigger/0: one upload with a corrupt header.
%% Evidence: the worker exits with {badmatch, ...}; bug_missing_trap_exit_runner
%% exits with that same reason although its own code never failed (a
%% supervisor child_terminated report, a new runner pid); its `completed`
%% counter restarts from 0 and the jobs that were running are never
%% reported done.
%% Root cause: the runner links to its workers without trapping exits, so one
%% worker's crash propagates over the link and kills the runner and its state.
-module(bug_missing_trap_exit).
-behaviour(gen_server).

-export([start/0, stop/0, procs/0, trigger/0]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2, start_runner/0]).

-define(SUP, bug_missing_trap_exit_sup).
-define(RUNNER, bug_missing_trap_exit_runner).
-define(UPLOADS, bug_missing_trap_exit_uploads).

start() ->
    {ok, Sup} = supervisor:start_link({local, ?SUP}, ?MODULE, sup),
    unlink(Sup),
    register(?UPLOADS, spawn(fun() -> uploads(0) end)),
    ok.

trigger() ->
    ?UPLOADS ! corrupt_next,
    ok.

stop() ->
    case whereis(?UPLOADS) of
        undefined -> ok;
        P -> M = monitor(process, P), P ! stop, receive {'DOWN', M, _, _, _} -> ok end
    end,
    catch gen_server:stop(?SUP),
    ok.

procs() -> [P || N <- [?SUP, ?RUNNER, ?UPLOADS], P <- [whereis(N)], is_pid(P)].

%% uploads: an image every ~10 ms
uploads(N) ->
    receive
        stop -> ok;
        corrupt_next ->
            gen_server:cast(?RUNNER, {resize, N, <<"GIF8", 0:64>>}),
            uploads(N + 1)
    after 10 ->
        Image = <<"\x89PNG", 640:32, 480:32, (binary:copy(<<N:32>>, 16))/binary>>,
        gen_server:cast(?RUNNER, {resize, N, Image}),
        uploads(N + 1)
    end.

start_runner() -> gen_server:start_link({local, ?RUNNER}, ?MODULE, runner, []).

init(sup) ->
    {ok, {#{strategy => one_for_one, intensity => 5, period => 10},
          [#{id => runner, start => {?MODULE, start_runner, []}}]}};
init(runner) ->
    {ok, #{running => #{}, completed => 0, started_at => erlang:system_time(millisecond)}}.

handle_call(stats, _From, S = #{running := R, completed := C}) ->
    {reply, #{running => map_size(R), completed => C}, S}.

handle_cast({resize, Id, Image}, S = #{running := R}) ->
    Runner = self(),
    Pid = spawn_link(fun() -> resize(Runner, Id, Image) end),
    {noreply, S#{running := R#{Pid => Id}}};
handle_cast({done, Pid, _Id, _Thumb}, S = #{running := R, completed := C}) ->
    {noreply, S#{running := maps:remove(Pid, R), completed := C + 1}}.

handle_info(_Msg, S) -> {noreply, S}.

resize(Runner, Id, Image) ->
    <<"\x89PNG", W:32, H:32, Pixels/binary>> = Image,
    timer:sleep(20),
    Thumb = {W div 8, H div 8, erlang:md5(Pixels)},
    gen_server:cast(Runner, {done, self(), Id, Thumb}).
