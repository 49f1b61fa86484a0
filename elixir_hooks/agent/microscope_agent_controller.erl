%%% @doc One trace's controller: it starts the trace, answers for it while it
%%% runs, and undoes everything the trace set when it ends.
%%%
%%% ```
%%%   {ok, Ctl, Info} = start(Owner, Opts)   % answered once tracing runs
%%%   {ok, Stats} = status(Ctl)
%%%   {ok, Value} = eval_traced(Ctl, erlang, <<"1 + 1.">>, 5000)
%%%   {ok, Stats} = stop(Ctl)                % cleanup/2, then the last batches
%%% '''
%%%
%%% It owns a trace's processes and its inventory: it spawns the tracer
%%% (linked) and the sampler, asks microscope_agent_setup for every flag,
%%% pattern, monitor and the log handler, and microscope_agent_state for the hooks, and keeps
%%% what each returned, so that cleanup/2 undoes exactly that. It monitors
%%% its owner (a Python mailbox, or a flight recorder's ring): a detach, a
%%% dropped connection or a killed kernel all end in the same cleanup. What
%%% a trace may touch is decided before any of it, by microscope_agent_scope.
-module(microscope_agent_controller).
-include("microscope_agent.hrl").

-export([start/2, stop/1, status/1, trace_state/1, eval_traced/4]).
%% @private spawned by start/2
-export([init/3]).

%% Up to this many traced processes, their state hooks are asked for before
%% the trace's caller is answered (a pass of one process_info each).
-define(HOOK_FIRST_MAX, 2000).

-record(ctl, {owner, owner_ref, tracer, backend, procs = [], patterns = [],
              flags = [], opts, started, deadline_ref, monitor = none,
              %% state hooks: pid -> pending | installed | removed, and what
              %% installs them (microscope_agent_state:context/4: their id,
              %% unique per trace, their report table and stop flag)
              hooks = #{}, hook_ctx, sampler, stop_flag,
              %% gen_statems whose callbacks are call-traced for their data:
              %% Module => [Pid] (microscope_agent_state:watch_statems/4)
              statems = #{},
              %% watch_only (a flight recorder's counters level): the processes
              %% are monitored, not traced; pid -> true
              watched = #{},
              %% lines: the sink this trace replaced (line_sink_push/1), or none
              line_prev = none,
              %% logs: the id of the logger handler this trace added, or none
              log_handler = none}).

%%%===================================================================
%%% PUBLIC (through microscope_agent)
%%%===================================================================

start(Owner, Opts) when is_pid(Owner), is_map(Opts) ->
    Caller = self(),
    Pid = spawn(?MODULE, init, [Caller, Owner, Opts]),
    Ref = erlang:monitor(process, Pid),
    receive
        {Pid, started, Info} ->
            erlang:demonitor(Ref, [flush]),
            {ok, Pid, Info};
        {Pid, refused, Reason} ->
            erlang:demonitor(Ref, [flush]),
            {error, Reason};
        {'DOWN', Ref, process, Pid, Reason} ->
            {error, {agent_crashed, Reason}}
    after 60000 ->
        exit(Pid, kill),
        {error, start_timeout}
    end.

stop(Agent) when is_pid(Agent) ->
    call(Agent, stop).

status(Agent) when is_pid(Agent) ->
    call(Agent, status).

trace_state(Agent) when is_pid(Agent) ->
    call(Agent, trace_state).

%% A cell that blocks (Process.sleep(:infinity), a receive with no after)
%% never stays on the node: past Timeout it is killed.
eval_traced(Agent, Lang, Code, Timeout) when is_pid(Agent), is_binary(Code) ->
    Ref = erlang:monitor(process, Agent),
    Agent ! {eval, self(), Ref, Lang, Code},
    eval_wait(Agent, Ref, none, erlang:monotonic_time(millisecond) + Timeout).

%% The controller names the worker ({Ref, worker, Pid}) before it runs; the
%% worker answers {Ref, Result}. A trace that stops meanwhile (a limit)
%% leaves the code to finish untraced, still within the deadline.
eval_wait(Agent, Ref, Worker, Deadline) ->
    receive
        {Ref, worker, Pid} ->
            eval_wait(Agent, Ref, Pid, Deadline);
        {Ref, Result} ->
            erlang:demonitor(Ref, [flush]),
            Result;
        {'DOWN', Ref, process, Agent, _} when Worker =:= none ->
            {error, not_running};
        {'DOWN', Ref, process, Agent, _} ->
            eval_wait(Agent, Ref, Worker, Deadline)
    after max(0, Deadline - erlang:monotonic_time(millisecond)) ->
        erlang:demonitor(Ref, [flush]),
        is_pid(Worker) andalso exit(Worker, kill),
        {error, timeout}
    end.

call(Agent, Request) ->
    case microscope_agent:request(Agent, fun(From, Ref) -> {Request, From, Ref} end, 30000) of
        {ok, Reply} -> Reply;
        down -> {error, not_running};
        timeout -> {error, timeout}
    end.

%%%===================================================================
%%% START
%%%===================================================================

init(Caller, Owner, Opts0) ->
    process_flag(trap_exit, true),
    Opts = maps:merge(microscope_agent_scope:defaults(), Opts0),
    OwnerRef = erlang:monitor(process, Owner),
    case microscope_agent_scope:validate(Caller, Opts) of
        {error, Reason} ->
            Caller ! {self(), refused, Reason};
        {ok, Procs, Patterns, Swept} ->
            Backend0 = microscope_agent_setup:backend_kind(),
            MonitorMFAs = microscope_agent_setup:monitor_patterns(Backend0, Opts, Patterns),
            %% The controller raises this flag to stop the tracer ahead of its
            %% backlog: a message would wait behind every queued trace message.
            StopFlag = atomics:new(1, []),
            {Reports, Drops} = microscope_agent_state:new_reports(),
            HookCost = case maps:get(state, Opts) of
                           true -> microscope_agent_state:overhead();
                           false -> 0
                       end,
            Tracer = spawn_opt(microscope_agent_tracer, init,
                               [self(), Owner, Opts#{track_monitors => MonitorMFAs =/= [],
                                                     stop_flag => StopFlag,
                                                     hook_overhead => HookCost,
                                                     reports => Reports,
                                                     report_drops => Drops}],
                               [link, {message_queue_data, off_heap}]),
            Backend = microscope_agent_setup:backend(Backend0, Tracer),
            Flags = microscope_agent_setup:trace_flags(Opts, MonitorMFAs =/= []),
            Ctl0 = #ctl{owner = Owner, owner_ref = OwnerRef, tracer = Tracer,
                        backend = Backend, flags = Flags, opts = Opts,
                        started = erlang:monotonic_time(), stop_flag = StopFlag,
                        hook_ctx = microscope_agent_state:context(Tracer, StopFlag,
                                                                 {Reports, Drops}, Opts)},
            microscope_agent_setup:set_patterns(Backend, Patterns, counting(Ctl0)),
            microscope_agent_setup:set_monitor_patterns(Backend, MonitorMFAs),
            Ctl1 = Ctl0#ctl{patterns = Patterns ++ MonitorMFAs},
            Ctl2 = (case counting(Ctl1) of
                        true -> watch_procs(Procs, Ctl1);
                        false -> Ctl1#ctl{procs = microscope_agent_setup:trace_procs(
                                                    Backend, Flags, Procs)}
                    end)#ctl{monitor = microscope_agent_setup:set_monitor(Tracer, Opts)},
            Counted = case counting(Ctl2) of
                          true -> {Backend, Ctl2#ctl.patterns};
                          false -> none
                      end,
            Sampler = spawn_link(microscope_agent_sampler, init,
                                 [Tracer, Ctl2#ctl.procs,
                                  {maps:get(mailbox_ms, Opts), maps:get(adaptive, Opts), Counted}]),
            Ctl3 = case maps:get(duration_ms, Opts) of
                       infinity -> Ctl2#ctl{sampler = Sampler};
                       Ms -> Ctl2#ctl{sampler = Sampler,
                                      deadline_ref = erlang:send_after(Ms, self(), duration)}
                   end#ctl{line_prev = case maps:get(lines, Opts) of
                                           true -> microscope_agent_setup:line_sink_push(Tracer);
                                           false -> none
                                       end,
                           log_handler = log_handler(Tracer, Opts)},
            %% Hooks are asked for without waiting: a backlogged GenServer takes
            %% the request when it reaches it, so trace start never waits on the
            %% app. A small scope is asked before the caller hears "started", so
            %% a call the caller makes next queues behind the request and its
            %% state is recorded; a big one (a pass over thousands of processes)
            %% is asked after, so a trace of a 50k-process node starts at once.
            HookFirst = maps:get(state, Opts) andalso length(Ctl3#ctl.procs) =< ?HOOK_FIRST_MAX,
            Ctl4 = case HookFirst of
                       true -> hook_states(Ctl3#ctl.procs, Ctl3);
                       false -> Ctl3
                   end,
            %% The caller (an rpc from Python) is answered once tracing runs;
            %% what costs a pass over every traced process (links and monitors,
            %% names, a big scope's hooks) follows as one details message to the
            %% owner.
            Caller ! {self(), started,
                      (start_info(Ctl4, Procs, MonitorMFAs, HookCost))#{swept => Swept}},
            Ctl = case maps:get(state, Opts) andalso not HookFirst of
                      true -> hook_states(Ctl4#ctl.procs, Ctl4);
                      false -> Ctl4
                  end,
            %% Taken after tracing began: a link or monitor made meanwhile is
            %% both here and an event, never in neither.
            Relations = relations(Ctl#ctl.procs, [self(), Tracer]),
            Owner ! {microscope_details, self(), start_details(Ctl, Relations)},
            %% Setting up (calibration, a pass over every process) leaves a
            %% heap the trace's life would otherwise carry.
            erlang:garbage_collect(),
            loop(Ctl)
    end.

%% A killed trace's handler goes first: it holds an id another trace may need.
log_handler(Tracer, Opts = #{logs := true}) ->
    microscope_agent_setup:log_handler_sweep(),
    microscope_agent_setup:log_handler_add(Tracer, Opts);
log_handler(_, _) ->
    none.

%% Watching only (a recorder's counters level), the BEAM counts the calls
%% (call_count patterns) and the processes are monitored, not traced.
counting(#ctl{opts = Opts}) ->
    maps:get(watch_only, Opts, false).

%% What Python learns as the trace starts (Recording.info), then in the
%% details message right after (merged into Recording.info).
start_info(Ctl = #ctl{tracer = Tracer, backend = Backend, opts = Opts}, Procs, MonitorMFAs,
           HookCost) ->
    #{tracer => Tracer,
      backend => element(1, Backend),
      traced => length(Ctl#ctl.procs),
      hook_overhead_ns => HookCost,
      patterns => length(Ctl#ctl.patterns) - length(MonitorMFAs),
      skipped_foreign => skipped_foreign(Procs, Ctl),
      system_monitor => Ctl#ctl.monitor =/= none,
      monitors => microscope_agent_setup:monitor_tracking(maps:get(lifecycle, Opts), MonitorMFAs),
      logs => case {maps:get(logs, Opts), Ctl#ctl.log_handler} of
                  {false, _} -> off;
                  {true, none} -> unavailable;
                  {true, _} -> on
              end,
      time_offset => erlang:time_offset(),
      native_per_second => erlang:convert_time_unit(1, second, native),
      started => Ctl#ctl.started,
      node => node(),
      otp_release => erlang:system_info(otp_release)}.

%% As columns: on a 50k-process node the relations alone are 100k tuples of
%% pids, and decoding pid terms one by one is most of what Python spends.
start_details(Ctl, Relations) ->
    #{hooked => maps:size(Ctl#ctl.hooks),
      hook_requests => microscope_agent_inspect:pid_list(maps:keys(Ctl#ctl.hooks)),
      relations => microscope_agent_inspect:relation_columns(Relations),
      %% so time travel knows them from the start; an
      %% everything-trace of a huge node leaves them to their
      %% first event rather than send a list that size
      traced_pids => case length(Ctl#ctl.procs) of
                         N when N =< 20000 -> Ctl#ctl.procs;
                         _ -> []
                     end,
      names => [{P, N} || P <- Ctl#ctl.procs,
                          {registered_name, N} <- [catch erlang:process_info(P, registered_name)],
                          is_atom(N)]}.

skipped_foreign(Requested, #ctl{procs = Traced}) ->
    %% A map, not lists:member: an everything-trace has one entry per process.
    Ours = maps:from_list([{P, true} || P <- Traced]),
    length([P || P <- Requested, not is_map_key(P, Ours), is_process_alive(P)]).

%% Links and monitors of the traced processes as tracing begins (monitors
%% both ways: the ones a process holds and the ones held on it), each as
%% {Traced, link | monitor | monitored_by, Other}.
relations(Procs, Own) ->
    lists:usort(lists:flatmap(fun(P) -> relations_of(P, Own) end, Procs)).

relations_of(P, Own) ->
    case erlang:process_info(P, [links, monitors, monitored_by]) of
        undefined -> [];
        [{links, Links}, {monitors, Monitors}, {monitored_by, By}] ->
            [{P, link, L} || L <- Links, is_pid(L), not lists:member(L, Own)]
                ++ [{P, monitor, T} || {process, Target} <- Monitors,
                                       T <- [microscope_agent_events:monitor_target(Target)],
                                       is_pid(T)]
                ++ [{P, monitored_by, W} || W <- By, is_pid(W), not lists:member(W, Own)]
    end.

%% WATCH ONLY: any trace flag on a process costs its message passing (a
%% third, measured on OTP 25 with set_on_spawn alone), so the counters level
%% of a flight recorder sets none: it monitors the processes (an exit is
%% still an event, and a trigger), samples them, and looks for new ones
%% (a restarted child) every second, every ten for an everything-trace.
watch_procs(Procs, Ctl) ->
    [erlang:monitor(process, P) || P <- Procs],
    erlang:send_after(rescan_ms(Ctl), self(), rescan),
    Ctl#ctl{procs = Procs, watched = maps:from_list([{P, true} || P <- Procs])}.

rescan(Ctl = #ctl{opts = Opts, watched = Watched}) ->
    Found = try microscope_agent_scope:resolve_procs(maps:get(procs, Opts),
                                                     [self() | maps:get(exclude, Opts)])
            catch throw:{refused, _} -> []
            end,
    New = [P || P <- Found, not is_map_key(P, Watched)],
    [begin erlang:monitor(process, P), Ctl#ctl.sampler ! {add, P} end || P <- New],
    Ctl#ctl{procs = New ++ Ctl#ctl.procs,
            watched = maps:merge(Watched, maps:from_list([{P, true} || P <- New]))}.

rescan_ms(#ctl{opts = #{procs := all}}) -> 10000;
rescan_ms(_) -> 1000.

%% Procs are ours (traced by us, or children that inherited our tracer): a
%% process another tool traces gets no hook either.
hook_states(Procs, Ctl = #ctl{hooks = Hooks, hook_ctx = HookCtx}) ->
    {New, Statems} = microscope_agent_state:install(Procs, Hooks, HookCtx),
    Watched = case counting(Ctl) of
                  true -> Ctl#ctl.statems;   % nothing traced, nothing call-traced
                  false -> microscope_agent_state:watch_statems(
                             Ctl#ctl.backend, Ctl#ctl.tracer, Statems, Ctl#ctl.statems)
              end,
    Ctl#ctl{hooks = maps:merge(Hooks, maps:from_list([{P, pending} || P <- New])),
            statems = Watched}.

%%%===================================================================
%%% RUNNING
%%%===================================================================

loop(Ctl = #ctl{owner_ref = OwnerRef, tracer = Tracer}) ->
    receive
        {'DOWN', OwnerRef, process, _, _} ->
            %% Detach, dropped connection or dead kernel: same cleanup. No
            %% notebook is left to unload the agent (a kernel killed with
            %% kill -9 never detaches), so the controller does, once alone.
            cleanup(Ctl, owner_down),
            microscope_agent:unload_when_alone();
        {stop, From, Ref} ->
            Stats = cleanup(Ctl, stopped),
            From ! {Ref, {ok, Stats}};
        {status, From, Ref} ->
            From ! {Ref, {ok, (tracer_stats(Tracer))#{hooks => hook_counts(Ctl)}}},
            loop(Ctl);
        {trace_state, From, Ref} ->
            From ! {Ref, {ok, #{procs => Ctl#ctl.procs, patterns => Ctl#ctl.patterns,
                                hooks => Ctl#ctl.hooks, tracer => Tracer,
                                statems => Ctl#ctl.statems,
                                hook_id => microscope_agent_state:hook_id(Ctl#ctl.hook_ctx),
                                log_handler => Ctl#ctl.log_handler,
                                backend => element(1, Ctl#ctl.backend)}}},
            loop(Ctl);
        {{microscope_hook, installed, P}, ok} ->
            %% The GenServer reached our install request: from its next
            %% callback on, every transition is recorded.
            Tracer ! {microscope_hook, P, 1, erlang:monotonic_time()},
            loop(Ctl#ctl{hooks = (Ctl#ctl.hooks)#{P => installed}});
        duration ->
            Stats = cleanup(Ctl, duration),
            notify_owner(Ctl, duration, Stats);
        {limit, Reason} ->
            %% The tracer tripped a limit; stop at the source.
            Stats = cleanup(Ctl, Reason),
            notify_owner(Ctl, Reason, Stats);
        {spawned, Child} ->
            %% Children inherit the tracer; hook the GenServers among them
            %% once they are up (restarted workers, new pool members), and
            %% sample their mailboxes.
            Ctl#ctl.sampler ! {add, Child},
            case maps:get(state, Ctl#ctl.opts) of
                true -> erlang:send_after(20, self(), {hook_later, Child});
                false -> ok
            end,
            loop(Ctl);
        {eval, From, Ref, Lang, Code} ->
            Worker = spawn(fun() ->
                receive microscope_go -> From ! {Ref, eval_code(Lang, Code)} end
            end),
            From ! {Ref, worker, Worker},     % eval_traced/4 kills it past its timeout
            microscope_agent_setup:trace_one(Ctl#ctl.backend, Worker, Ctl#ctl.flags),
            Ctl#ctl.sampler ! {add, Worker},
            Worker ! microscope_go,
            loop(Ctl#ctl{procs = [Worker | Ctl#ctl.procs]});
        {hook_later, Child} ->
            loop(hook_states([Child], Ctl));
        {'EXIT', Tracer, Reason} ->
            cleanup(Ctl, {tracer_exit, Reason});
        {'DOWN', _, process, P, Reason} when is_map_key(P, Ctl#ctl.watched) ->
            Tracer ! {microscope_down, P, Reason, erlang:monotonic_time()},
            %% its supervisor restarts it at once: look for the new one soon
            [erlang:send_after(Ms, self(), rescan_now) || Ms <- [20, 100, 300]],
            loop(Ctl#ctl{watched = maps:remove(P, Ctl#ctl.watched)});
        rescan ->
            erlang:send_after(rescan_ms(Ctl), self(), rescan),
            loop(rescan(Ctl));
        rescan_now ->
            loop(rescan(Ctl));
        _ ->
            loop(Ctl)
    end.

hook_counts(#ctl{hooks = Hooks}) ->
    maps:fold(fun(_, S, Acc) -> maps:update_with(S, fun(N) -> N + 1 end, 1, Acc) end,
              #{pending => 0, installed => 0}, Hooks).

%% A failure comes back as {error, {Class, Reason, Text}}, Text the error as
%% the language's own shell would print it: "** (UndefinedFunctionError)
%% function Demo.nope/1 is undefined or private", a syntax error with its
%% line and column.
eval_code(elixir, Code) ->
    try 'Elixir.Code':eval_string(Code) of
        {Value, _Binding} -> {ok, Value}
    catch Class:Reason:Stack ->
            {error, {Class, Reason, elixir_banner(Class, Reason, Stack)}}
    end;
eval_code(erlang, Code) ->
    case erl_scan:string(binary_to_list(Code)) of
        {error, {Line, Mod, Desc}, _} ->
            {error, {error, syntax, erlang_syntax(Line, Mod, Desc)}};
        {ok, Tokens, _} ->
            case erl_parse:parse_exprs(Tokens) of
                {error, {Line, Mod, Desc}} ->
                    {error, {error, syntax, erlang_syntax(Line, Mod, Desc)}};
                {ok, Exprs} ->
                    try erl_eval:exprs(Exprs, []) of
                        {value, Value, _} -> {ok, Value}
                    catch Class:Reason:Stack ->
                            Text = try erl_error:format_exception(Class, Reason, Stack)
                                   catch _:_ -> io_lib:format("~p:~p", [Class, Reason])
                                   end,
                            {error, {Class, Reason, first_line(Text)}}
                    end
            end
    end.

elixir_banner(Class, Reason, Stack) ->
    try 'Elixir.Exception':format_banner(Class, Reason, Stack)
    catch _:_ -> iolist_to_binary(io_lib:format("** (~p) ~p", [Class, Reason]))
    end.

erlang_syntax(Location, Mod, Desc) ->
    {Line, Column} = case Location of
                         {L, C} -> {L, C};
                         L -> {L, undefined}
                     end,
    Where = case Column of
                undefined -> io_lib:format("line ~p", [Line]);
                _ -> io_lib:format("line ~p, column ~p", [Line, Column])
            end,
    iolist_to_binary(["syntax error at ", Where, ": ", Mod:format_error(Desc)]).

first_line(Text) ->
    hd(string:split(unicode:characters_to_binary(Text), "\n")).

%%%===================================================================
%%% CLEANUP
%%%===================================================================

notify_owner(#ctl{owner = Owner}, Reason, Stats) ->
    Owner ! {microscope_stopped, self(), Reason, Stats}.

%% Undo exactly what we did, then flush the tracer. Nothing here waits on a
%% traced process: hooks are asked to go (and go by themselves once the
%% tracer is gone), so a backlogged app cannot hold the stop.
cleanup(Ctl = #ctl{tracer = Tracer, backend = Backend}, Reason) ->
    %% The last samples of the queues belong to the trace: taken before its
    %% end, so a backlog drained by the stop is seen drained.
    microscope_agent_sampler:final(Ctl#ctl.sampler),
    StopTs = erlang:monotonic_time(),
    %% From now on every hook of this trace removes itself at its next callback.
    atomics:put(Ctl#ctl.stop_flag, 1, 1),
    microscope_agent_setup:restore_monitor(Ctl#ctl.monitor, Tracer),
    microscope_agent_setup:line_sink_pop(Tracer, Ctl#ctl.line_prev),
    microscope_agent_setup:log_handler_remove(Ctl#ctl.log_handler, Tracer),
    %% a watched gen_statem's call flag is ours too, and its children's
    microscope_agent_setup:untrace_procs(Backend, case map_size(Ctl#ctl.statems) of
                                                      0 -> Ctl#ctl.flags;
                                                      _ -> lists:usort([call | Ctl#ctl.flags])
                                                  end),
    microscope_agent_state:unwatch_statems(Backend, Ctl#ctl.statems),
    microscope_agent_setup:unset_patterns(Backend, Ctl#ctl.patterns, counting(Ctl)),
    microscope_agent_setup:destroy_backend(Backend),
    microscope_agent_state:remove(maps:keys(Ctl#ctl.hooks), Ctl#ctl.hook_ctx),
    Pending = [P || {P, pending} <- maps:to_list(Ctl#ctl.hooks)],
    Stats = case is_process_alive(Tracer) of
                true -> finish_tracer(Ctl, Reason, StopTs);
                false -> #{}
            end,
    unlink(Tracer),
    exit(Tracer, shutdown),
    Stats#{hooks_pending_at_stop => length(Pending)}.

finish_tracer(#ctl{tracer = Tracer}, Reason, StopTs) ->
    case microscope_agent:request(Tracer, fun(From, Ref) -> {finish, From, Ref, Reason, StopTs} end,
                                  5000) of
        {ok, Stats} -> Stats;
        _ -> #{}
    end.

tracer_stats(Tracer) ->
    case microscope_agent:request(Tracer, fun(From, Ref) -> {stats, From, Ref} end, 5000) of
        {ok, Stats} -> Stats;
        down -> #{state => stopped};
        timeout -> #{state => busy}
    end.
