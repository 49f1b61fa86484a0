%%% @doc The in-node agent of BEAM Microscope: safe, bounded tracing.
%%%
%%% A notebook loads the agent's modules diskless (code:load_binary/3) and
%%% drives them over distribution, always through this one. From Python:
%%%
%%% ```
%%% >>> rec = s.trace(modules=["Demo.WorkerB"], max_events=100_000)
%%% >>> rec.status()
%%% {'events': 5120, 'dropped': 0, 'rate': 1024.0, 'state': 'running'}
%%% >>> rec.stop()
%%% '''
%%%
%%% which on the node amounts to:
%%%
%%% ```
%%% 1> {ok, Agent, Info} = microscope_agent:start(OwnerPid, #{max_events => 100000}).
%%% 2> microscope_agent:stop(Agent).
%%% '''
%%%
%%% Structure (after recon_trace):
%%%
%%% ```
%%%   traced processes --trace msgs--> tracer --batches--> Python owner (or a flight ring)
%%%   GenServers (sys hook) --state-->   |  limits: count, rate, queue, payload
%%%   sampler --mailboxes, vitals----->  | linked
%%%                                    controller --monitors--> owner
%%% '''
%%%
%%% The tracer does as little as it can: it turns each trace message into a
%%% fixed-width 40-byte header plus a raw term_to_binary payload and ships
%%% them in batches, so the Python side decodes headers in bulk and payloads
%%% only when asked. Its mailbox is off-heap and its length is checked every
%%% few hundred events: past the shedding threshold it discards, counting
%%% what it discards, and past the hard cap it stops the trace. Loss is
%%% reported as `dropped' events, never silent.
%%%
%%% The controller owns every side effect and undoes exactly what it did:
%%% trace flags only on processes it traced (and their children, which carry
%%% its tracer), trace patterns only on functions it patterned, sys hooks by
%%% their id. It monitors the Python owner: a detach, a dropped connection
%%% or a killed kernel all end in the same cleanup. It never touches a
%%% process that someone else (dbg, recon, redbug) is tracing. On OTP 27+
%%% it uses an isolated trace session instead.
%%%
%%% It never creates atoms from input and needs only kernel and stdlib.
%%%
%%% One module per concept, each owning its state (and its processes):
%%%
%%% ```
%%%   microscope_agent             this facade: the API Python calls, the agent's
%%%                                modules and version, and how it leaves a node
%%%   microscope_agent_controller  one trace: start, status, eval, stop, cleanup
%%%   microscope_agent_scope       what a trace may touch: options and limits, the
%%%                                processes and functions it names, what is refused
%%%   microscope_agent_setup       what a trace sets on the node, and what undoes it
%%%   microscope_agent_tracer      trace messages -> limits -> batches -> the owner
%%%   microscope_agent_events      what each message becomes: a 40-byte header, a payload
%%%   microscope_agent_state       GenServer state capture through sys debug hooks
%%%   microscope_agent_sampler     mailbox lengths, vitals, scheduler load, call counts
%%%   microscope_agent_log         the logger handler: the node's log events -> the tracer
%%%   microscope_agent_flight      the flight recorder: a ring on the node, its triggers
%%%   microscope_agent_inspect     process tables, one process in detail, module sources
%%% '''
%%%
%%% They are one unit: loaded together (Python's beam_file.ensure_agent, this
%%% facade last), of one version (microscope_agent.hrl; version/0 answers it
%%% only when every module is loaded at it, so a mismatch has them all loaded
%%% again), and unloaded together (this facade first, so that version/0
%%% stops answering before any other goes). Calls between them are remote
%%% calls; the tracer's per-event path makes one (into its event format).
%%%
%%% Inventory: everything a trace sets on the node, and what undoes it
%%% (microscope_agent_controller:cleanup/2: on stop, detach, a dropped
%%% connection or a dead kernel; setup: is microscope_agent_setup, state:
%%% microscope_agent_state):
%%%
%%% ```
%%%   trace flags on the traced processes    setup:untrace_procs/2, or session_destroy (OTP 27+)
%%%   (watch_only: monitors instead)          gone with the controller
%%%   call patterns (modules=, monitor BIFs) setup:unset_patterns/3, or session_destroy
%%%   (watch_only: call_count patterns)      the same
%%%   sys debug hooks (state capture)        state:remove/2; each hook also removes
%%%                                          itself once the stop flag is raised
%%%   the system monitor, when taken         setup:restore_monitor/2
%%%   controller, tracer, sampler processes  exit at cleanup (tracer and sampler linked)
%%%   scheduler_wall_time (adaptive traces)  held by the sampler: off when it exits
%%%   a flight recorder's ring process       ends at its expiry or flight_remove/1,
%%%                                          after its trace's own cleanup; at expiry
%%%                                          it unloads the agent when alone
%%%   the hooks' report table (unnamed ETS)  owned by the controller: gone with it
%%%   the line sink (the persistent_term     setup:line_sink_pop/2: erased, or handed back
%%%   microscope_line_sink)                  to the trace that held it before; a sink left
%%%                                          by a killed agent is erased at unload
%%%   the log handler (logger, one of the    setup:log_handler_remove/2; one left by a killed
%%%   ids microscope_log_1..8)               controller removes itself at its next event, and
%%%                                          is swept by the next start and at unload
%%%   the agent's modules                    unloaded by Python at detach, unless a
%%%                                          flight recorder or another session's trace
%%%                                          runs (in_use/0); when the owner dies instead
%%%                                          (kill -9 of the kernel), by its controller
%%%                                          after cleanup, once no other process runs
%%%                                          agent code
%%%   a %%trace cell's process               killed by eval_traced/4 past its timeout
%%%
%%% A controller killed outright (exit/2 with kill, a purge) runs no cleanup:
%%% its tracer, flags, hooks (at their next callback), system monitor and
%%% OTP 27+ session go with it by themselves; the line sink, the log
%%% handler and, before OTP 27, its call patterns are swept by the next start
%%% or by sweep/1 at unload (setup:sweep_orphans/1: ours by their match specs, and held by no
%%% live controller of ours).
%%% '''
%%%
%%% Nothing else: no registered name, no file, no new atom (the line sink's
%%% key and the log handlers' ids are atoms of the agent). A flight recorder is the one thing that
%%% outlives the notebook: explicit, listed by flight_list/0, removable from
%%% any session, and gone at its expiry.
-module(microscope_agent).
-include("microscope_agent.hrl").

%% PUBLIC: what Python calls (microscope_jupyter/agent/)
-export([version/0, start/2, stop/1, status/1, trace_state/1, eval_traced/4]).
-export([process_table/0, process_tree/0, process_details/2, module_source/1]).
-export([flight_start/1, flight_list/0, flight_pull/2, flight_remove/1, sweep/1, in_use/0]).
%% @private what the agent's modules share
-export([modules/0, request/3, is_ours/1, unload_when_alone/0]).

%% Every module but this one; keep in step with elixir_hooks/agent/*.erl
%% (a unit test compares them).
-define(MODULES, [microscope_agent_controller, microscope_agent_scope, microscope_agent_setup,
                  microscope_agent_tracer, microscope_agent_events, microscope_agent_state,
                  microscope_agent_sampler, microscope_agent_flight, microscope_agent_inspect,
                  microscope_agent_log]).

%%%===================================================================
%%% PUBLIC
%%%===================================================================

%% @doc This agent's version, once every one of its modules is loaded at
%% it; else {stale, Modules}, and Python loads them all again.
version() ->
    case [M || M <- ?MODULES, module_version(M) =/= ?VERSION] of
        [] -> ?VERSION;
        Stale -> {stale, Stale}
    end.

%% Read only from a loaded module: calling one that is not would have an
%% interactive node look for it on disk.
module_version(M) ->
    case erlang:module_loaded(M) of
        true ->
            case lists:keyfind(microscope_version, 1, M:module_info(attributes)) of
                {microscope_version, [V]} -> V;
                false -> none
            end;
        false -> none
    end.

%% @doc Start tracing on behalf of Owner (a pid on the Python node).
%% Opts (a map; keys are atoms the agent already knows, values plain data;
%% the defaults are microscope_agent_scope:defaults/0):
%%   procs          all | [pid() | binary()]       names are resolved, never created
%%   modules        [{binary(), binary() | '_', integer() | '_'}]  call tracing
%%   messages       boolean()  (true)
%%   lifecycle      boolean()  (true)
%%   state          boolean()  (true)   sys hooks on GenServers / gen_statem
%%   gc             boolean()  (false)
%%   max_events     pos_integer()  (1000000)  then the trace stops
%%   max_rate       pos_integer()  (200000 events/s)  beyond it, events are dropped and counted
%%   duration_ms    pos_integer() | infinity  (infinity)
%%   payload_limit  pos_integer()  (4096 bytes)  larger payloads are cut to a summary
%%   batch_events   pos_integer()  (2000)
%%   flush_ms       pos_integer()  (50)
%%   shed_queue     pos_integer()  (50000) tracer mailbox length where shedding starts
%%   max_queue      pos_integer()  (500000) where the trace stops to protect the node
%%   exclude        [pid()]  processes never traced (ours on the Python side)
%%   system_monitor auto | true | false  (auto)  long_gc / long_schedule / large_heap
%%                  events; auto takes the node's system monitor only when nobody
%%                  holds it, true replaces it; either way the previous one is
%%                  restored at the end
%%   long_gc_ms, long_schedule_ms  (50)    large_heap_words  (1000000)
%%   logs           boolean()  (true)   the node's log events (a logger handler)
start(Owner, Opts) when is_pid(Owner), is_map(Opts) ->
    microscope_agent_controller:start(Owner, Opts).

stop(Agent) when is_pid(Agent) ->
    microscope_agent_controller:stop(Agent).

status(Agent) when is_pid(Agent) ->
    microscope_agent_controller:status(Agent).

%% @doc What this agent has set, for tests and for the curious.
trace_state(Agent) when is_pid(Agent) ->
    microscope_agent_controller:trace_state(Agent).

%% @doc Evaluate Code (a binary of Elixir or Erlang source) in a fresh
%% process that the trace follows from its first instruction: the
%% notebook's %%trace cell. Returns {ok, Value} | {error, Reason}; code
%% still running after Timeout ms is killed, and {error, timeout} says so.
eval_traced(Agent, Lang, Code, Timeout) when is_pid(Agent), is_binary(Code) ->
    microscope_agent_controller:eval_traced(Agent, Lang, Code, Timeout).

%% @doc Every process, as columns (microscope_agent_inspect).
process_table() ->
    microscope_agent_inspect:process_table().

%% @doc Every process with what a supervision tree needs, as columns.
process_tree() ->
    microscope_agent_inspect:process_tree().

%% @doc One process as a person inspecting it wants it, never waiting
%% more than Timeout ms.
process_details(Process, Timeout) ->
    microscope_agent_inspect:process_details(Process, Timeout).

%% @doc Where a module's source is, and its functions' lines.
module_source(Module) when is_atom(Module) ->
    microscope_agent_inspect:module_source(Module).

%% @doc Flight recorders (microscope_agent_flight): start one, list them,
%% pull one's batches to To, remove one.
flight_start(Opts) when is_map(Opts) ->
    microscope_agent_flight:start(Opts).

flight_list() ->
    microscope_agent_flight:list().

flight_pull(Ring, To) when is_pid(Ring), is_pid(To) ->
    microscope_agent_flight:pull(Ring, To).

flight_remove(Ring) when is_pid(Ring) ->
    microscope_agent_flight:remove(Ring).

%% @doc At unload (Python's detach): what a trace killed before its cleanup
%% left behind (microscope_agent_setup:sweep/1).
sweep(Modules) when is_list(Modules) ->
    microscope_agent_setup:sweep(Modules).

%% @doc At unload: whether another trace still runs agent code here (its
%% controller, tracer or sampler): Python then leaves the agent loaded, as
%% deleting its modules would fail that trace's next call between them; the
%% trace's own session unloads it at its detach, or its controller if its
%% kernel dies. The caller's own trace, just stopped, is given a second to go.
in_use() ->
    not wait_alone(20).

%%%===================================================================
%%% SHARED by the agent's modules
%%%===================================================================

%% @private This facade and every other module of the agent: what is
%% loaded, checked and unloaded together, this facade first.
modules() ->
    [?MODULE | ?MODULES].

%% @private Every request between our processes: Make(self(), Ref) is sent
%% to Pid, which answers {Ref, Reply}. {ok, Reply}, or down / timeout.
request(Pid, Make, Timeout) ->
    Ref = erlang:monitor(process, Pid),
    Pid ! Make(self(), Ref),
    receive
        {Ref, Reply} -> erlang:demonitor(Ref, [flush]), {ok, Reply};
        {'DOWN', Ref, process, Pid, _} -> down
    after Timeout ->
        erlang:demonitor(Ref, [flush]),
        timeout
    end.

%% @private The agent's processes (controller, tracer, sampler, ring) and
%% whatever is running agent code right now (the rpc that starts or stops
%% a trace).
is_ours(P) when P =:= self() -> true;
is_ours(P) ->
    case erlang:process_info(P, [initial_call, current_function]) of
        [{initial_call, {M1, _, _}}, {current_function, {M2, _, _}}] ->
            Ours = modules(),
            lists:member(M1, Ours) orelse lists:member(M2, Ours);
        _ -> false
    end.

%% @private At a flight recorder's expiry no session is there to unload the
%% agent: the recorder does, once no other process runs agent code (another
%% session's trace or recorder keeps it). So does a controller whose owner
%% died (a kernel killed outright never detaches). It cannot purge code it
%% is running, so it hibernates into the purges: hibernation drops its
%% stack, and a message already queued wakes it at once, running OTP's code
%% alone.
unload_when_alone() ->
    %% Up to 10 s: its own trace's processes are on their way out (a tracer
    %% draining its last batch on a busy node takes a while), and the ring
    %% has nothing else to do. Others waiting to unload do not count: two
    %% controllers whose kernels died together would otherwise wait on each other.
    put(microscope_unloading, true),
    case wait_alone(200) andalso not unloaded_by_another() of
        true ->
            %% a sink handed back to a tracer that was ending too (two traces
            %% stopped together) points at a dead process: alone, it goes
            _ = catch microscope_agent_setup:line_sink_sweep(),
            %% and a handler whose trace was killed goes before the module logger calls
            _ = catch microscope_agent_setup:log_handler_sweep(),
            %% this facade first: version/0 stops answering before any other goes
            Modules = modules(),
            %% old code left by an unload whose purge was refused then goes
            %% first: while it is there, delete refuses
            [code:soft_purge(M) || M <- Modules],
            [code:delete(M) || M <- Modules],
            self() ! purge,
            erlang:hibernate(lists, foreach, [fun code:soft_purge/1, Modules]);
        false ->
            ok
    end.

%% Another unloader went first (two kernels died together) when the code this
%% process runs is no longer the current one: what is loaded now, if
%% anything, is a new session's, loaded since, and is not ours to delete.
unloaded_by_another() ->
    code:is_loaded(?MODULE) =:= false orelse erlang:check_process_code(self(), ?MODULE).

wait_alone(0) ->
    false;
wait_alone(Tries) ->
    case [P || P <- erlang:processes(), P =/= self(), is_ours(P), not unloading(P)] of
        [] -> true;
        _ -> timer:sleep(50), wait_alone(Tries - 1)
    end.

unloading(P) ->
    case erlang:process_info(P, dictionary) of
        {dictionary, D} -> lists:keymember(microscope_unloading, 1, D);
        undefined -> true
    end.
