%%% @doc What a trace sets on the node, and what undoes each: trace flags,
%%% call patterns (the user's, and the monitor BIFs'), the system monitor,
%%% the line sink, the log handler; and the sweep of what a killed trace
%%% left behind.
%%%
%%% ```
%%%   Backend = backend(backend_kind(), Tracer)      % OTP 27+: {session, S}; else {legacy, Tracer}
%%%   Traced = trace_procs(Backend, Flags, Procs)    ... untrace_procs(Backend, Flags)
%%%   set_patterns(Backend, MFAs, false)             ... unset_patterns(Backend, MFAs, false)
%%%   Monitor = set_monitor(Tracer, Opts)            ... restore_monitor(Monitor, Tracer)
%%%   Prev = line_sink_push(Tracer)                  ... line_sink_pop(Tracer, Prev)
%%%   Id = log_handler_add(Tracer, Opts)             ... log_handler_remove(Id, Tracer)
%%%   destroy_backend(Backend)
%%% '''
%%%
%%% Each setter returns what its undoer needs, and the controller keeps it
%%% (microscope_agent_controller, the inventory in microscope_agent). OTP 27+
%%% has isolated trace sessions: nothing set there can disturb dbg, recon or
%%% another tool, and destroying the session removes all of it. Before, flags
%%% and patterns are node-wide: a process someone else traces is left alone,
%%% and a pattern someone else set is refused, never overwritten.
-module(microscope_agent_setup).
-include("microscope_agent.hrl").

-export([has_sessions/0, backend_kind/0, backend/2, destroy_backend/1]).
-export([trace_flags/2, trace_procs/3, trace_one/3, untrace_procs/2]).
-export([set_patterns/3, unset_patterns/3, check_patterns_free/1, call_count/2]).
-export([monitor_patterns/3, set_monitor_patterns/2, monitor_tracking/2]).
-export([set_monitor/2, restore_monitor/2]).
-export([line_sink_push/1, line_sink_pop/2, line_sink_sweep/0]).
-export([log_handler_add/2, log_handler_remove/2, log_handler_sweep/0]).
-export([sweep/1, sweep_orphans/1]).

%%%===================================================================
%%% BACKEND
%%%===================================================================

has_sessions() ->
    code:ensure_loaded(trace) =:= {module, trace}
        andalso erlang:function_exported(trace, session_create, 3).

backend_kind() ->
    case has_sessions() of true -> session; false -> legacy end.

backend(session, Tracer) -> {session, trace:session_create(microscope, Tracer, [])};
backend(legacy, Tracer) -> {legacy, Tracer}.

destroy_backend({session, Session}) -> catch trace:session_destroy(Session), ok;
destroy_backend({legacy, _}) -> ok.

%%%===================================================================
%%% TRACE FLAGS
%%%===================================================================

trace_flags(Opts, TrackMonitors) ->
    Base = [set_on_spawn, monotonic_timestamp],
    Msg = case maps:get(messages, Opts) of true -> [send, 'receive']; false -> [] end,
    %% procs is needed for spawn events, which also drive hooking new GenServers.
    Life = [procs],
    Calls = case {maps:get(modules, Opts), TrackMonitors} of {[], false} -> []; _ -> [call] end,
    Gc = case maps:get(gc, Opts) of true -> [garbage_collection]; false -> [] end,
    lists:append([Base, Msg, Life, Calls, Gc]).

%% The processes traced: those no other tool traces (before OTP 27).
trace_procs(Backend, Flags, Procs) ->
    lists:filter(fun(P) -> trace_one(Backend, P, Flags) end, Procs).

trace_one({session, S}, P, Flags) ->
    try trace:process(S, P, true, Flags) of
        1 -> true;
        _ -> false
    catch error:badarg -> false
    end;
trace_one({legacy, Tracer}, P, Flags) ->
    %% One tracer per process before OTP 27: a process someone else traces
    %% is left alone, so their trace survives ours.
    case erlang:trace_info(P, tracer) of
        {tracer, []} ->
            try erlang:trace(P, true, [{tracer, Tracer} | Flags]) of
                1 -> true;
                _ -> false
            catch error:badarg -> false
            end;
        _ -> false
    end.

untrace_procs({session, _}, _Flags) ->
    ok;  % session_destroy removes every flag of the session
untrace_procs({legacy, Tracer}, Flags) ->
    %% Ours are the processes whose tracer is our tracer: the ones we set
    %% and the children that inherited it through set_on_spawn.
    [catch erlang:trace(P, false, Flags)
     || P <- erlang:processes(), erlang:trace_info(P, tracer) =:= {tracer, Tracer}],
    ok.

%%%===================================================================
%%% CALL PATTERNS
%%%===================================================================

%% What a call pattern of ours asks for (sweep_orphans/1 knows ours by it).
-define(CALL_SPEC, [{'_', [], [{return_trace}, {exception_trace}]}]).

%% Counting (a recorder's counters level), the BEAM counts the calls
%% (call_count: a counter per function, no message per call) and the
%% sampler reads the counts (call_count/2).
set_patterns(_Backend, [], _Counting) ->
    ok;
set_patterns(Backend, MFAs, Counting) ->
    {MS, Flags} = case Counting of
                      true -> {true, [call_count]};
                      false -> {?CALL_SPEC, [local]}
                  end,
    case Backend of
        {legacy, _} ->
            [erlang:trace_pattern(MFA, MS, Flags) || MFA <- MFAs];
        {session, S} ->
            [trace:function(S, MFA, MS, Flags) || MFA <- MFAs]
    end,
    ok.

unset_patterns({legacy, _}, MFAs, Counting) ->
    Flags = case Counting of true -> [call_count]; false -> [local] end,
    [catch erlang:trace_pattern(MFA, false, Flags) || MFA <- MFAs],
    ok;
unset_patterns(_, _, _) ->
    ok.  % session_destroy removes them

call_count({legacy, _}, MFA) -> erlang:trace_info(MFA, call_count);
call_count({session, S}, MFA) -> trace:info(S, MFA, call_count).

%% Patterns are global before OTP 27: refuse rather than overwrite a
%% pattern another tool (dbg, recon) set.
check_patterns_free(MFAs) ->
    case [MFA || MFA <- MFAs, erlang:trace_info(MFA, traced) =/= {traced, false}] of
        [] -> true;
        [{M, F, A} | _] -> throw({refused, {pattern_in_use, M, F, A}})
    end.

%% Monitors have no trace flag: they are seen by call-tracing the BIFs that
%% make and remove them. Only monitor/2 and demonitor/1: every gen call
%% makes its own monitor with monitor/3 and removes it with demonitor/2,
%% and a breakpoint on either cost each GenServer.call ~0.5 us (a tenth of
%% a traced call, measured on OTP 25) for a monitor that lives for one call,
%% which is in the trace already. Elixir's Process.monitor is monitor/2;
%% Task's and gen's monitors are monitor/3 aliases we never tracked. A
%% tracked monitor removed by demonitor/2 (Process.demonitor, a flush) is
%% found gone by the tracer's checks (microscope_agent_events:check_monitors/1).
%% Before OTP 27 patterns are global, so both must be free of other tools'
%% patterns, or monitors go untracked; the same if the user patterns one of
%% them, or if another tool call-traces some process (our global patterns
%% would add monitor calls to its trace).
-define(MONITOR_MFAS, [{erlang, monitor, 2}, {erlang, demonitor, 1}]).

monitor_patterns(Backend, Opts, UserPatterns) ->
    Wanted = maps:get(lifecycle, Opts) andalso maps:get(monitors, Opts, true)
        andalso not lists:any(fun(MFA) -> lists:member(MFA, UserPatterns) end, ?MONITOR_MFAS)
        andalso (Backend =:= session
                 orelse (lists:all(fun(MFA) -> erlang:trace_info(MFA, traced) =:= {traced, false} end,
                                   ?MONITOR_MFAS)
                         andalso not foreign_call_tracing())),
    case Wanted of
        true -> ?MONITOR_MFAS;
        false -> []
    end.

foreign_call_tracing() ->
    lists:any(fun(P) ->
                      case erlang:trace_info(P, flags) of
                          {flags, Flags} -> lists:member(call, Flags);
                          _ -> false
                      end
              end, erlang:processes()).

monitor_tracking(false, _) -> off;
monitor_tracking(true, []) -> unavailable;
monitor_tracking(true, _) -> tracked.

monitor_match_spec({erlang, monitor, 2}) ->
    [{[process, '_'], [], [{return_trace}]}];
monitor_match_spec({erlang, demonitor, 1}) ->
    %% the same as `true', but ours by its look (our_monitor_patterns/0)
    [{['_'], [], []}].

set_monitor_patterns(Backend, MFAs) ->
    [case Backend of
         {legacy, _} -> erlang:trace_pattern(MFA, monitor_match_spec(MFA), [local]);
         {session, S} -> trace:function(S, MFA, monitor_match_spec(MFA), [local])
     end || MFA <- MFAs],
    ok.

%%%===================================================================
%%% ORPHANS
%%%===================================================================

%% @doc At unload (Python's detach): what a trace killed before its cleanup
%% left behind. Modules are the modules= specs the session traced (call
%% patterns are swept by their functions; see sweep_orphans/1).
sweep(Modules) when is_list(Modules) ->
    Patterns = lists:usort(lists:flatmap(fun(Spec) ->
                                                 try microscope_agent_scope:resolve_pattern(Spec)
                                                 catch throw:{refused, _} -> []
                                                 end
                                         end, Modules)),
    #{lines => line_sink_sweep(), logs => log_handler_sweep(),
      patterns => sweep_orphans(Patterns)}.

%% A controller killed outright (exit(Pid, kill), a purge of the agent,
%% start/2's timeout) runs no cleanup. Its flags, hooks and system monitor
%% go with its tracer by themselves, and OTP 27+'s session with it, but
%% before OTP 27 its call patterns outlive it, node-wide: the next trace of
%% those modules would be refused, monitors would go untracked, and another
%% tool's call trace would get our calls. Ours are told apart by their
%% match specs (nobody else asks for return and exception trace together,
%% or for our monitor/3 spec), and they are orphans when no live controller
%% of ours holds them; then they go. Another tool's patterns, even on the
%% same functions, are left alone, and so is everything while a controller
%% does not say what it holds. Swept at every start (for the modules it
%% names) and at unload (for the modules the session traced).
sweep_orphans(MFAs) ->
    case has_sessions() of
        true -> 0;
        false ->
            Ours = [MFA || MFA <- lists:usort(MFAs), our_pattern(MFA, ?CALL_SPEC)]
                ++ our_monitor_patterns(),
            Orphans = case Ours of
                          [] -> [];
                          _ -> case held_patterns() of
                                   {ok, Held} -> Ours -- Held;
                                   unknown -> []
                               end
                      end,
            [erlang:trace_pattern(MFA, false, [local]) || MFA <- Orphans],
            length(Orphans)
    end.

our_pattern(MFA, Spec) ->
    case erlang:trace_info(MFA, all) of
        {all, Info} when is_list(Info) ->
            lists:member({traced, local}, Info) andalso lists:member({match_spec, Spec}, Info);
        _ ->
            false
    end.

%% Ours only all together: one of them alone may be another tool's.
our_monitor_patterns() ->
    case lists:all(fun(MFA) -> our_pattern(MFA, monitor_match_spec(MFA)) end, ?MONITOR_MFAS) of
        true -> ?MONITOR_MFAS;
        false -> []
    end.

%% The patterns every other live controller holds, as each says; unknown if
%% one does not answer (busy setting up or stopping, or an older agent).
held_patterns() ->
    Me = self(),
    Others = [P || P <- erlang:processes(), P =/= Me,
                   erlang:process_info(P, initial_call)
                       =:= {initial_call, {microscope_agent_controller, init, 3}}],
    lists:foldl(fun(_, unknown) -> unknown;
                   (P, {ok, Acc}) ->
                        case microscope_agent:request(
                               P, fun(From, Ref) -> {trace_state, From, Ref} end, 1000) of
                            {ok, {ok, #{patterns := Held}}} -> {ok, Held ++ Acc};
                            down -> {ok, Acc};
                            _ -> unknown
                        end
                end, {ok, []}, Others).

%%%===================================================================
%%% SYSTEM MONITOR
%%%===================================================================

%% The node has one system monitor. Take it only when free (auto) or when
%% asked (true); remember what was there and put it back at the end, unless
%% someone replaced ours meanwhile.
set_monitor(Tracer, Opts) ->
    Previous = erlang:system_monitor(),
    case {maps:get(system_monitor, Opts), Previous} of
        {false, _} -> none;
        {auto, {_, _}} -> none;
        _ ->
            %% long_schedule times every schedule of every process: about a
            %% tenth on a message ping-pong (OTP 25). A recorder's counters
            %% level leaves it out unless a trigger asks for it.
            Schedule = case maps:get(long_schedule, Opts, true) of
                           true -> [{long_schedule, maps:get(long_schedule_ms, Opts)}];
                           false -> []
                       end,
            erlang:system_monitor(Tracer, [{long_gc, maps:get(long_gc_ms, Opts)},
                                           {large_heap, maps:get(large_heap_words, Opts)}
                                           | Schedule]),
            {set, Previous}
    end.

restore_monitor(none, _Tracer) -> ok;
restore_monitor({set, Previous}, Tracer) ->
    case erlang:system_monitor() of
        {Tracer, _} ->
            case Previous of
                {Pid, Options} -> catch erlang:system_monitor(Pid, Options);
                undefined -> erlang:system_monitor(undefined)
            end;
        _ -> ok
    end,
    ok.

%%%===================================================================
%%% LINES: where BeamMicroscope.inspect_line/1,2 sends its events
%%%===================================================================

%% The hooks package (elixir_hooks/lib) reads this key on every call, so the
%% cheap case (no recording) is one persistent_term:get/2; an atom key, as an
%% atom's hash is precomputed (a tuple key measured twice as slow). The value is the
%% tracer's pid, an immediate: replacing or erasing it starts no global GC.
%% The newest trace that takes lines holds it and hands it back when it ends.
-define(LINE_SINK, microscope_line_sink).

line_sink_push(Tracer) ->
    Prev = persistent_term:get(?LINE_SINK, none),
    persistent_term:put(?LINE_SINK, Tracer),
    Prev.

line_sink_pop(Tracer, Prev) ->
    case persistent_term:get(?LINE_SINK, none) of
        Tracer when is_pid(Prev) ->
            case is_process_alive(Prev) of
                true -> persistent_term:put(?LINE_SINK, Prev);
                false -> persistent_term:erase(?LINE_SINK)
            end;
        Tracer ->
            persistent_term:erase(?LINE_SINK);
        _ ->
            ok   % a newer trace holds it, and hands it on when it ends
    end.

%% A sink whose trace was killed before its cleanup ran would keep every
%% inspect_line call sending to a dead pid.
line_sink_sweep() ->
    case persistent_term:get(?LINE_SINK, none) of
        P when is_pid(P) ->
            case is_process_alive(P) of
                true -> kept;
                false -> persistent_term:erase(?LINE_SINK), erased
            end;
        _ -> none
    end.

%%%===================================================================
%%% LOGS: a logger handler of ours (microscope_agent_log) per trace
%%%===================================================================

%% Handler ids are atoms, and input never makes one: a trace takes the first
%% of these free (logger adds one id once, so two traces starting together
%% cannot take the same), and runs without logs when all are taken. A
%% handler is ours by its module; one someone else added, under whatever
%% id, is never touched.
-define(LOG_HANDLERS, [microscope_log_1, microscope_log_2, microscope_log_3, microscope_log_4,
                       microscope_log_5, microscope_log_6, microscope_log_7, microscope_log_8]).
-define(LOG_MODULE, microscope_agent_log).

%% The handler takes every event the node's primary level lets through; the
%% tracer bounds them like messages (max_rate, shedding).
log_handler_add(Tracer, Opts) ->
    Config = #{level => all, filter_default => log, filters => [],
               config => #{tracer => Tracer, limit => maps:get(payload_limit, Opts)}},
    log_handler_add(?LOG_HANDLERS, ?LOG_MODULE, Config).

log_handler_add([], _, _) ->
    none;
log_handler_add([Id | Rest], Module, Config) ->
    case catch logger:add_handler(Id, Module, Config) of
        ok -> Id;
        {error, {already_exist, Id}} -> log_handler_add(Rest, Module, Config);
        _ -> none
    end.

%% Only while it is still the one this trace added.
log_handler_remove(none, _Tracer) ->
    ok;
log_handler_remove(Id, Tracer) ->
    case log_handler_tracer(Id) of
        Tracer -> _ = catch logger:remove_handler(Id), ok;
        _ -> ok
    end.

%% A handler whose trace was killed before its cleanup ran forwards to a
%% dead tracer (and removes itself at its next event): swept at every start
%% and at unload, before our modules go.
log_handler_sweep() ->
    length([catch logger:remove_handler(Id)
            || Id <- logger:get_handler_ids(),
               Tracer <- [log_handler_tracer(Id)], is_pid(Tracer),
               not is_process_alive(Tracer)]).

%% The tracer of a handler of ours, or none.
log_handler_tracer(Id) ->
    case catch logger:get_handler_config(Id) of
        {ok, #{module := ?LOG_MODULE, config := #{tracer := Tracer}}} -> Tracer;
        _ -> none
    end.
