%%% @doc The in-node agent of BEAM Microscope: safe, bounded tracing.
%%%
%%% A notebook loads this module diskless (code:load_binary/3) and drives
%%% it over distribution. From Python:
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
%%%   traced processes --trace msgs--> tracer --batches--> Python owner
%%%   GenServers (sys hook) --state-->   |  limits: count, rate, queue, payload
%%%                                      | linked
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
%%% Inventory: everything a trace sets on the node, and what undoes it
%%% (cleanup/2: on stop, detach, a dropped connection or a dead kernel):
%%%
%%% ```
%%%   trace flags on the traced processes    untrace_procs/1, or session_destroy (OTP 27+)
%%%   (watch_only: monitors instead)          gone with the controller
%%%   call patterns (modules=, monitor BIFs) unset_patterns/1, or session_destroy
%%%   (watch_only: call_count patterns)      the same
%%%   sys debug hooks (state capture)        unhook_states/1; each hook also removes
%%%                                          itself once the stop flag is raised
%%%   the system monitor, when taken         restore_monitor/2
%%%   controller, tracer, sampler processes  exit at cleanup (tracer and sampler linked)
%%%   scheduler_wall_time (adaptive traces)  held by the sampler: off when it exits
%%%   a flight recorder's ring process       ends at its expiry or flight_remove/1,
%%%                                          after its trace's own cleanup; at expiry
%%%                                          it unloads this module when alone
%%%   the hooks' report table (unnamed ETS)  owned by the controller: gone with it
%%%   the line sink (the persistent_term     line_sink_pop/2: erased, or handed back to
%%%   microscope_line_sink)                  the trace that held it before; a sink left
%%%                                          by a killed agent is erased at unload
%%%   this module                            unloaded by Python at detach; when the
%%%                                          owner dies instead (kill -9 of the kernel),
%%%                                          by its controller after cleanup, once no
%%%                                          other process runs agent code
%%%   a %%trace cell's process               killed by eval_traced/4 past its timeout
%%%
%%% A controller killed outright (exit/2 with kill, a purge) runs no cleanup:
%%% its tracer, flags, hooks (at their next callback), system monitor and
%%% OTP 27+ session go with it by themselves; the line sink and, before OTP
%%% 27, its call patterns are swept by the next start or by sweep/1 at
%%% unload (sweep_orphans/1: ours by their match specs, and held by no
%%% live controller of ours).
%%% '''
%%%
%%% Nothing else: no registered name, no file, no new atom (the line sink's
%%% key is an atom of this module). A flight recorder is the one thing that
%%% outlives the notebook: explicit, listed by flight_list/0, removable from
%%% any session, and gone at its expiry.
-module(microscope_agent).

%% PUBLIC
-export([process_details/2, module_source/1]).
-export([version/0, start/2, stop/1, status/1, trace_state/1, eval_traced/4, process_table/0,
         process_tree/0]).
-export([flight_start/1, flight_list/0, flight_pull/2, flight_remove/1, sweep/1]).
%% @private internal exports (spawned funs, sys debug hook)
-export([controller_init/3, tracer_init/3, sampler_init/3, state_hook/3, flight_init/2]).
%% @private the throwaway GenServer that measures what a hook costs
-export([init/1, handle_call/3, handle_cast/2]).

-define(VERSION, 23).
-define(HOOK_ID, microscope_state_hook).
%% Maps and tuples larger than this are not compared field by field in a
%% state hook (OTP keeps maps up to 32 keys flat, cheap to walk).
-define(DIFF_KEYS, 32).
%% The most payload_limit may be (options.py holds the same ceiling).
-define(MAX_PAYLOAD_LIMIT, 65536).
-define(HEADER_BYTES, 40).

%% Event kinds: keep in step with microscope_jupyter/store/schema.py
-define(K_SPAWN, 1).
-define(K_EXIT, 2).
-define(K_LINK, 3).
-define(K_UNLINK, 4).
-define(K_REGISTER, 5).
-define(K_UNREGISTER, 6).
-define(K_SEND, 7).
-define(K_SEND_TO_DEAD, 8).
-define(K_RECEIVE, 9).
-define(K_CALL, 10).
-define(K_RETURN, 11).
-define(K_EXCEPTION, 12).
-define(K_STATE, 13).
-define(K_GC, 14).
-define(K_DROPPED, 15).
-define(K_LONG_GC, 16).
-define(K_LONG_SCHEDULE, 17).
-define(K_LARGE_HEAP, 18).
-define(K_LINE, 19).       % BeamMicroscope.inspect_line/1,2: aux is the line, payload {Label, File, Binding}
%% 19 (line) and 20 (annotation) are written on the Python side.
-define(K_MONITOR, 21).
-define(K_DEMONITOR, 22).
-define(K_TIMEOUT, 23).    % a `receive ... after' that fired: not a message
-define(K_HOOK, 24).       % a state hook changed: aux 1 installed, 0 removed
-define(K_MAILBOX, 25).    % a sampled message_queue_len: aux is the length
-define(K_VITALS, 26).     % sampled memory, heap and reductions: aux is memory in bytes
-define(K_GRANULARITY, 27). % the tracer changed how much it keeps: aux is the level (GRANULARITY)
-define(K_CALL_COUNT, 28). % calls of a function since the last sample (counters level): aux is how many

-define(F_TRUNCATED, 1).

%%%===================================================================
%%% PUBLIC
%%%===================================================================

version() -> ?VERSION.

%% @doc Start tracing on behalf of Owner (a pid on the Python node).
%% Opts (a map; keys are atoms the agent already knows, values plain data):
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
start(Owner, Opts) when is_pid(Owner), is_map(Opts) ->
    Caller = self(),
    Pid = spawn(?MODULE, controller_init, [Caller, Owner, Opts]),
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

%% @doc Evaluate Code (a binary of Elixir or Erlang source) in a fresh
%% process that the trace follows from its first instruction: the
%% notebook's %%trace cell. Returns {ok, Value} | {error, Reason}. Code
%% still running after Timeout ms is killed, and {error, timeout} says so:
%% a cell that blocks (Process.sleep(:infinity), a receive with no after)
%% never stays on the node.
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

%% @doc Every process, as columns (see COLUMNS): pid, name, initial_call,
%% current_function, status, message_queue_len, memory, reductions.
%% proc_lib processes all start in proc_lib:init_p/5; their real entry
%% point is in their dictionary, read only for them.
process_table() ->
    columns([{pid, pids}, {name, terms}, {initial_call, terms}, {current_function, terms},
             {status, terms}, {message_queue_len, ints}, {memory, ints}, {reductions, ints}],
            lists:filtermap(fun table_row/1, erlang:processes())).

table_row(P) ->
    case erlang:process_info(P, [registered_name, initial_call, current_function, status,
                                 message_queue_len, memory, reductions]) of
        undefined -> false;
        [{registered_name, Name}, {initial_call, Call}, {current_function, Current},
         {status, Status}, {message_queue_len, Queue}, {memory, Memory},
         {reductions, Reductions}] ->
            Initial = case Call of
                          {proc_lib, init_p, 5} ->
                              case erlang:process_info(P, dictionary) of
                                  {dictionary, D} -> spawned_as(D, Call);
                                  _ -> undefined
                              end;
                          _ -> Call
                      end,
            {true, {P, Name, Initial, Current, Status, Queue, Memory, Reductions}}
    end.

%% @doc Every process with what a supervision tree needs, as columns: pid,
%% name, parent, initial_call, status, message_queue_len, memory,
%% application, reductions. Parent is the first '$ancestors' entry (proc_lib
%% keeps it).
%% Both tables are compiled here rather than sent as erl_eval source: on a
%% node with 50k processes the interpreted versions cost the node seconds.
process_tree() ->
    columns([{pid, pids}, {name, terms}, {parent, pids}, {initial_call, terms},
             {status, terms}, {message_queue_len, ints}, {memory, ints},
             {application, terms}, {reductions, ints}],
            lists:filtermap(fun tree_row/1, erlang:processes())).

tree_row(P) ->
    case erlang:process_info(P, [registered_name, dictionary, status, message_queue_len,
                                 memory, initial_call, reductions]) of
        undefined -> false;
        [{registered_name, Name}, {dictionary, D}, {status, Status},
         {message_queue_len, Queue}, {memory, Memory}, {initial_call, Call},
         {reductions, Reductions}] ->
            Parent = case lists:keyfind('$ancestors', 1, D) of
                         {_, [A | _]} when is_pid(A) -> A;
                         {_, [A | _]} when is_atom(A) -> whereis(A);
                         _ -> undefined
                     end,
            Initial = spawned_as(D, Call),
            App = case application:get_application(P) of {ok, Ap} -> Ap; _ -> undefined end,
            {true, {P, Name, Parent, Initial, Status, Queue, Memory, App, Reductions}}
    end.

%% @doc One process as a person inspecting it wants it: its links and
%% monitors, where it is, its counters, and (for a GenServer, gen_statem or
%% other sys process that answers within Timeout ms) its state. A busy
%% process does not answer in time: the state is then {error, timeout},
%% never a wait. Never more than Timeout.
process_details(Text = <<"<", _/binary>>, Timeout) ->
    try list_to_pid(binary_to_list(Text)) of
        P -> process_details(P, Timeout)
    catch error:badarg -> {error, not_a_pid}
    end;
process_details(Name, Timeout) when is_binary(Name) ->
    %% Only an atom the node already has can name a process: none is created.
    try whereis(binary_to_existing_atom(Name, utf8)) of
        P when is_pid(P) -> process_details(P, Timeout);
        _ -> {error, not_registered}
    catch error:badarg -> {error, not_registered}
    end;
process_details(P, Timeout) when is_pid(P) ->
    Info = erlang:process_info(P, [registered_name, status, message_queue_len, memory,
                                   reductions, current_function, links, monitors,
                                   monitored_by, trap_exit]),
    case Info of
        undefined -> {error, not_alive};
        _ ->
            State = case erlang:process_info(P, dictionary) of
                        {dictionary, D} when is_list(D) ->
                            case lists:keymember('$initial_call', 1, D) of
                                true -> catch_state(P, Timeout);
                                false -> {error, not_a_sys_process}
                            end;
                        _ -> {error, not_alive}
                    end,
            {ok, maps:from_list([{state, State} | Info])}
    end.

%% sys:get_state in a helper: if the process does not answer, the helper
%% is killed and the caller goes on (the request stays in the process's
%% mailbox and its late answer goes to a dead pid, which costs nothing).
catch_state(P, Timeout) ->
    Self = self(),
    Ref = make_ref(),
    {Helper, MRef} = spawn_monitor(fun() -> Self ! {Ref, catch sys:get_state(P, infinity)} end),
    receive
        {Ref, {'EXIT', Why}} -> erlang:demonitor(MRef, [flush]), {error, Why};
        {Ref, State} -> erlang:demonitor(MRef, [flush]), {ok, State}
    after Timeout ->
        exit(Helper, kill),
        erlang:demonitor(MRef, [flush]),
        receive {Ref, _} -> ok after 0 -> ok end,
        {error, timeout}
    end.

%% @doc Where a module's source is and what its functions' lines are:
%% #{source => Path | undefined, text => Binary | undefined (the file, when
%% this node can read it and it is under 2 MB), functions => [{Name, Arity,
%% Line}] from the debug info (Erlang's abstract code, or Elixir's through
%% its debug_info backend), or {error, Why} when a release stripped it}.
module_source(Module) when is_atom(Module) ->
    case code:ensure_loaded(Module) of
        {module, Module} ->
            Compile = try Module:module_info(compile) catch _:_ -> [] end,
            Source = case lists:keyfind(source, 1, Compile) of
                         {source, S} -> unicode:characters_to_binary(S);
                         false -> undefined
                     end,
            {ok, #{source => Source, text => read_source(Source),
                   functions => function_lines(Module)}};
        {error, Why} -> {error, Why}
    end.

read_source(undefined) -> undefined;
read_source(Path) ->
    case file:read_file_info(Path) of
        {ok, Info} when element(2, Info) < 2000000 ->
            case file:read_file(Path) of
                {ok, Text} -> Text;
                _ -> undefined
            end;
        _ -> undefined
    end.

function_lines(Module) ->
    Beam = case code:which(Module) of
               Path when is_list(Path) -> Path;
               _ -> case code:get_object_code(Module) of
                        {_, Binary, _} -> Binary;
                        error -> none
                    end
           end,
    case Beam =/= none andalso beam_lib:chunks(Beam, [debug_info]) of
        {ok, {Module, [{debug_info, {debug_info_v1, Backend, Data}}]}} ->
            case catch Backend:debug_info(erlang_v1, Module, Data, []) of
                {ok, Forms} ->
                    [{Name, Arity, erl_anno:line(Anno)}
                     || {function, Anno, Name, Arity, _} <- Forms];
                _ -> {error, no_debug_info}
            end;
        {ok, {Module, [{debug_info, _}]}} -> {error, no_debug_info};
        _ -> {error, no_debug_info}
    end.

%% COLUMNS: a table of N rows as {microscope_columns, N, [{Name, Kind, Data}]},
%% so that the client decodes a handful of terms, not N times a row's:
%%   pids   Data is one binary, the pids' texts joined by spaces ("" for a
%%          row without one);
%%   ints   Data is a binary of N signed 64-bit little-endian integers;
%%   terms  Data is {Distinct, Index}: the distinct values, and a binary of
%%          N 32-bit little-endian indexes into them (an MFA, a status or
%%          an application repeats across thousands of processes).
columns(Spec, Rows) ->
    {_, Out} = lists:foldl(
                 fun({Name, Kind}, {I, Acc}) ->
                         Values = [element(I, R) || R <- Rows],
                         {I + 1, [{Name, Kind, column(Kind, Values)} | Acc]}
                 end, {1, []}, Spec),
    {microscope_columns, length(Rows), lists:reverse(Out)}.

column(pids, Values) ->
    iolist_to_binary(lists:join($\s, [case is_pid(P) of
                                          true -> pid_to_list(P);
                                          false -> ""
                                      end || P <- Values]));
column(ints, Values) ->
    << <<V:64/little-signed>> || V <- Values >>;
column(terms, Values) ->
    {Index, _, Distinct} =
        lists:foldl(fun(V, {Acc, Seen, Ds}) ->
                            case Seen of
                                #{V := I} -> {[I | Acc], Seen, Ds};
                                _ ->
                                    I = map_size(Seen),
                                    {[I | Acc], Seen#{V => I}, [V | Ds]}
                            end
                    end, {[], #{}, []}, Values),
    {lists:reverse(Distinct), << <<I:32/little>> || I <- lists:reverse(Index) >>}.

%% @doc What this agent has set, for tests and for the curious.
trace_state(Agent) when is_pid(Agent) ->
    call(Agent, trace_state).

call(Agent, Request) ->
    case request(Agent, fun(From, Ref) -> {Request, From, Ref} end, 30000) of
        {ok, Reply} -> Reply;
        down -> {error, not_running};
        timeout -> {error, timeout}
    end.

%% Every request between our processes: Make(self(), Ref) is sent to Pid,
%% which answers {Ref, Reply}. {ok, Reply}, or down / timeout.
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

%%%===================================================================
%%% FLIGHT RECORDER
%%%===================================================================

%% A trace that runs with no notebook attached, the one exception to "gone
%% when the notebook goes". Its owner is a ring process on the node instead
%% of a Python mailbox: it keeps the newest batches within max_bytes and
%% max_age_ms, freezes a copy when a trigger fires, and removes everything
%% at its expiry (until_ms) or when any session asks. Each batch defines its
%% own ids (the tracer's ring mode), so any batch can go. No registered name:
%% flight_list/0 finds rings by their initial call.
%%
%% ```
%%   {ok, Ring, Status} = flight_start(Opts)   % start/2's options, and FLIGHT_DEFAULTS
%%   [Status] = flight_list()
%%   {ok, Summary} = flight_pull(Ring, To)     % the batches go to To, as a trace's would
%%   ok = flight_remove(Ring)
%% '''
%%
%% Memory: the batches held stay within max_bytes. A frozen copy is the
%% newest batches worth half of it, taken a moment (post_ms) after its
%% trigger; copies share their batches with the ring (binaries are
%% reference-counted), so freezing copies no event. Over max_bytes, the
%% oldest copy goes while the copies alone hold more than half, else the
%% ring's oldest batch: the ring always has half the bytes to go on with.
-define(FLIGHT_DEFAULTS, #{max_bytes => 16000000, max_age_ms => 60000, until_ms => 86400000,
                           max_frozen => 4, post_ms => 250}).
-define(BATCH_OVERHEAD, 200).  % bytes a held batch costs beyond its binaries and ids
-define(MAX_TIMER_MS, 4294967295).

-record(ring, {ctl, ctl_ref, info, details = none, opts, started,
               %% {No, Bytes, ArrivedMs, BatchMessage}, oldest first
               batches = queue:new(), ring_bytes = 0,
               %% bytes held (the ring's, and the frozen copies' outside it)
               held = 0, evicted = 0,
               %% frozen copies (oldest first), and how many hold each batch No
               frozen = [], pinned = #{}, freezing = [], ignored = 0,
               state = recording, stop_stats = #{},
               %% bytes let go since the ring last collected its garbage
               freed = 0}).

flight_start(Opts) when is_map(Opts) ->
    Caller = self(),
    Ring = spawn(?MODULE, flight_init, [Caller, Opts]),
    Ref = erlang:monitor(process, Ring),
    receive
        {Ring, started, Status} -> erlang:demonitor(Ref, [flush]), {ok, Ring, Status};
        {Ring, refused, Reason} -> erlang:demonitor(Ref, [flush]), {error, Reason};
        {'DOWN', Ref, process, Ring, Reason} -> {error, {agent_crashed, Reason}}
    after 60000 ->
        exit(Ring, kill),
        {error, start_timeout}
    end.

flight_list() ->
    [Status || P <- erlang:processes(),
               erlang:process_info(P, initial_call) =:= {initial_call, {?MODULE, flight_init, 2}},
               {ok, Status} <- [request(P, fun(From, Ref) -> {status, From, Ref} end, 5000)]].

flight_pull(Ring, To) when is_pid(Ring), is_pid(To) ->
    case request(Ring, fun(From, Ref) -> {pull, From, Ref, To} end, 120000) of
        {ok, Summary} -> Summary;
        down -> {error, no_such_recorder};
        timeout -> {error, timeout}
    end.

flight_remove(Ring) when is_pid(Ring) ->
    case request(Ring, fun(From, Ref) -> {remove, From, Ref} end, 30000) of
        {ok, ok} -> ok;
        down -> {error, no_such_recorder};
        timeout -> {error, timeout}
    end.

flight_init(Caller, Opts0) ->
    Opts = maps:merge(?FLIGHT_DEFAULTS, Opts0),
    Bad = [{bad_limit, K, V} || K <- maps:keys(?FLIGHT_DEFAULTS), V <- [maps:get(K, Opts)],
                                not (is_integer(V) andalso V > 0 andalso V =< ?MAX_TIMER_MS)],
    TraceOpts = (maps:without(maps:keys(?FLIGHT_DEFAULTS), Opts))#{
                  ring => true, max_events => 1 bsl 59, duration_ms => infinity},
    case Bad of
        [Why | _] ->
            Caller ! {self(), refused, Why};
        [] ->
            case start(self(), TraceOpts) of
                {ok, Ctl, Info} ->
                    erlang:send_after(maps:get(until_ms, Opts), self(), expire),
                    erlang:send_after(1000, self(), age),
                    R = #ring{ctl = Ctl, ctl_ref = erlang:monitor(process, Ctl), info = Info,
                              opts = Opts, started = erlang:monotonic_time(millisecond)},
                    Caller ! {self(), started, flight_status(R)},
                    ring_loop(R);
                {error, Reason} ->
                    Caller ! {self(), refused, Reason}
            end
    end.

ring_loop(R = #ring{ctl_ref = CtlRef, opts = #{post_ms := PostMs, max_frozen := MaxFrozen}}) ->
    receive
        {microscope_batch, _, No, _, Headers, Payloads, Defs, _, _} = B ->
            Bytes = byte_size(Headers) + byte_size(Payloads) + ?BATCH_OVERHEAD
                + erts_debug:flat_size(Defs) * erlang:system_info(wordsize),
            Now = erlang:monotonic_time(millisecond),
            ring_loop(collect(evict(Now, R#ring{batches = queue:in({No, Bytes, Now, B},
                                                                   R#ring.batches),
                                                ring_bytes = R#ring.ring_bytes + Bytes,
                                                held = R#ring.held + Bytes})));
        {microscope_details, _, Details} ->
            ring_loop(R#ring{details = Details});
        {microscope_trigger, _, Why, Ts} ->
            %% Triggers while a copy waits join it; past max_frozen they are counted.
            case R#ring.freezing of
                [] when length(R#ring.frozen) < MaxFrozen ->
                    erlang:send_after(PostMs, self(), freeze),
                    ring_loop(R#ring{freezing = [{Why, Ts}]});
                [] ->
                    ring_loop(R#ring{ignored = R#ring.ignored + 1});
                Whys when length(Whys) < 16 ->
                    ring_loop(R#ring{freezing = Whys ++ [{Why, Ts}]});
                _ ->
                    ring_loop(R#ring{ignored = R#ring.ignored + 1})
            end;
        freeze ->
            ring_loop(freeze(R));
        age ->
            erlang:send_after(1000, self(), age),
            ring_loop(collect(evict(erlang:monotonic_time(millisecond), R)));
        {microscope_stopped, _, Reason, Stats} ->
            %% The trace stopped itself (overload): what the ring holds stays
            %% until the expiry, for a pull.
            ring_loop(R#ring{state = {stopped, Reason}, stop_stats = Stats});
        {'DOWN', CtlRef, process, _, Reason} when R#ring.state =:= recording ->
            ring_loop(R#ring{state = {stopped, Reason}});
        {status, From, Ref} ->
            From ! {Ref, flight_status(R)},
            ring_loop(R);
        {pull, From, Ref, To} ->
            From ! {Ref, pull(R, To)},
            ring_loop(R);
        {remove, From, Ref} ->
            flight_stop(R),
            From ! {Ref, ok};
        expire ->
            flight_stop(R),
            unload_when_alone();
        _ ->
            ring_loop(R)
    end.

%% The trace's own cleanup (every flag, pattern and hook it set); then the
%% ring process ends, and its batches with it.
flight_stop(#ring{ctl = Ctl}) ->
    case is_process_alive(Ctl) of
        true -> _ = stop(Ctl);
        false -> ok
    end,
    ok.

%% At its expiry no session is there to unload the agent: the recorder does,
%% once no other process runs agent code (another session's trace or
%% recorder keeps it). So does a controller whose owner died (a kernel
%% killed outright never detaches). It cannot purge code it is running, so
%% it hibernates into code:soft_purge/1: hibernation drops its stack, and a
%% message already queued wakes it at once, running OTP's code alone.
unload_when_alone() ->
    %% Up to 10 s: its own trace's processes are on their way out (a tracer
    %% draining its last batch on a busy node takes a while), and the ring
    %% has nothing else to do. Others waiting to unload do not count: two
    %% controllers whose kernels died together would otherwise wait on each other.
    put(microscope_unloading, true),
    case wait_alone(200) of
        true ->
            %% a sink handed back to a tracer that was ending too (two traces
            %% stopped together) points at a dead process: alone, it goes
            _ = line_sink_sweep(),
            code:delete(?MODULE),
            self() ! purge,
            erlang:hibernate(code, soft_purge, [?MODULE]);
        false ->
            ok
    end.

wait_alone(0) ->
    false;
wait_alone(Tries) ->
    case [P || P <- erlang:processes(), P =/= self(), agent_process(P), not unloading(P)] of
        [] -> true;
        _ -> timer:sleep(50), wait_alone(Tries - 1)
    end.

unloading(P) ->
    case erlang:process_info(P, dictionary) of
        {dictionary, D} -> lists:keymember(microscope_unloading, 1, D);
        undefined -> true
    end.

evict(Now, R = #ring{batches = Q, opts = #{max_bytes := MaxBytes, max_age_ms := MaxAge}}) ->
    Over = R#ring.held > MaxBytes,
    case queue:peek(Q) of
        _ when Over, R#ring.held - R#ring.ring_bytes > MaxBytes div 2 ->
            evict(Now, unfreeze_oldest(R));
        {value, {No, Bytes, At, B}} when Over; At < Now - MaxAge ->
            Freed = case is_map_key(No, R#ring.pinned) of
                        true -> 0;
                        false -> Bytes
                    end,
            evict(Now, R#ring{batches = queue:drop(Q), ring_bytes = R#ring.ring_bytes - Bytes,
                              held = R#ring.held - Freed, freed = R#ring.freed + Freed,
                              evicted = R#ring.evicted + element(4, B)});
        _ ->
            R
    end.

%% A batch let go is memory only once the ring collects its garbage: until
%% then its heap still refers to the binaries. Collected every sixteenth of
%% max_bytes let go (the heap is small: the binaries live outside it), so
%% what the node holds stays near max_bytes.
collect(R = #ring{freed = Freed, opts = #{max_bytes := MaxBytes}}) when Freed >= MaxBytes div 16 ->
    erlang:garbage_collect(),
    R#ring{freed = 0};
collect(R) ->
    R.

freeze(R = #ring{freezing = Whys, batches = Q, opts = #{max_bytes := MaxBytes, post_ms := PostMs}}) ->
    %% Anchored on the first trigger: what began after its post_ms is left
    %% out, so a late freeze (a busy ring) still holds the lead-up.
    Until = element(2, hd(Whys)) + erlang:convert_time_unit(PostMs, millisecond, native),
    Began = [B || B <- queue:to_list(Q), first_ts(B) =< Until],
    Batches = newest_within(lists:reverse(Began), MaxBytes div 2, []),
    Pinned = lists:foldl(fun({No, _, _, _}, M) -> maps:update_with(No, fun(C) -> C + 1 end, 1, M)
                         end, R#ring.pinned, Batches),
    Copy = #{why => [W || {W, _} <- Whys], at => element(2, hd(Whys)), batches => Batches},
    R#ring{frozen = R#ring.frozen ++ [Copy], pinned = Pinned, freezing = []}.

newest_within([{_, Bytes, _, _} = B | Older], Room, Acc) when Bytes =< Room ->
    newest_within(Older, Room - Bytes, [B | Acc]);
newest_within(_, _, Acc) ->
    Acc.

unfreeze_oldest(R = #ring{frozen = [#{batches := Batches} | Rest], batches = Q}) ->
    InRing = case queue:peek(Q) of
                 {value, {First, _, _, _}} -> fun(No) -> No >= First end;
                 empty -> fun(_) -> false end
             end,
    lists:foldl(
      fun({No, Bytes, _, _}, Acc = #ring{pinned = Pinned}) ->
              case maps:get(No, Pinned) of
                  1 ->
                      Held = case InRing(No) of
                                 true -> Acc#ring.held;
                                 false -> Acc#ring.held - Bytes
                             end,
                      Acc#ring{pinned = maps:remove(No, Pinned), held = Held,
                               freed = Acc#ring.freed + Acc#ring.held - Held};
                  C ->
                      Acc#ring{pinned = Pinned#{No := C - 1}}
              end
      end, R#ring{frozen = Rest}, Batches).

%% Every batch held (the frozen copies' and the ring's) goes to To in order,
%% numbered from 0, with seen and dropped counted over what is sent. The
%% summary says where batches are missing between them (aged out of the
%% ring) and the span of each frozen copy (monotonic native times).
pull(R = #ring{ctl = Ctl}, To) ->
    Held = lists:ukeysort(1, lists:append([maps:get(batches, C) || C <- R#ring.frozen])
                             ++ queue:to_list(R#ring.batches)),
    case R#ring.details of
        none -> ok;
        Details -> To ! {microscope_details, Ctl, Details}
    end,
    {_, _, Seen, Dropped, Gaps} = lists:foldl(fun(B, Acc) -> pull_one(B, To, Acc) end,
                                              {0, none, 0, 0, []}, Held),
    {ok, #{info => R#ring.info, batches => length(Held), seen => Seen, dropped => Dropped,
           gaps => lists:reverse(Gaps), status => flight_status(R),
           details => R#ring.details =/= none,
           frozen => [#{why => Why, at => At, from => lists:min([first_ts(B) || B <- Bs]),
                        to => lists:max([last_ts(B) || B <- Bs]),
                        events => lists:sum([element(4, B) || {_, _, _, B} <- Bs])}
                      || #{why := Why, at := At, batches := Bs} <- R#ring.frozen, Bs =/= []]}}.

pull_one({No, _, _, B} = Held, To, {N, Prev, Seen, Dropped, Gaps}) ->
    {microscope_batch, Tracer, _, Events, Headers, Payloads, Defs, _, _} = B,
    Counts = dropped_counts(#{headers => Headers}),
    Kept = Events - length(Counts) - granularity_rows(#{headers => Headers}),
    Seen1 = Seen + Kept + lists:sum(Counts),
    Dropped1 = Dropped + lists:sum(Counts),
    To ! {microscope_batch, Tracer, N, Events, Headers, Payloads, Defs, Seen1, Dropped1},
    Gaps1 = case Prev of
                {PrevNo, PrevHeld} when No > PrevNo + 1 ->
                    [#{from => last_ts(PrevHeld), to => first_ts(Held), batches => No - PrevNo - 1}
                     | Gaps];
                _ -> Gaps
            end,
    {N + 1, {No, Held}, Seen1, Dropped1, Gaps1}.

%% A held batch's earliest and latest event times (the header's fifth field):
%% its events are in tracer-mailbox order, not quite time order (samples,
%% hook reports), so the span is their minimum and maximum.
first_ts({_, _, _, B}) -> ts_bound(fun erlang:min/2, B).
last_ts({_, _, _, B}) -> ts_bound(fun erlang:max/2, B).

ts_bound(_, {microscope_batch, _, _, 0, _, _, _, _, _}) ->
    undefined;
ts_bound(Pick, {microscope_batch, _, _, _, Headers, _, _, _, _}) ->
    [First | Rest] = [Ts || <<_:16/binary, Ts:64/little-signed, _:16/binary>> <= Headers],
    lists:foldl(Pick, First, Rest).

flight_status(R = #ring{ctl = Ctl, info = Info, opts = Opts}) ->
    Offset = erlang:time_offset(millisecond),
    Trace = case R#ring.state of
                recording ->
                    case status(Ctl) of
                        {ok, M} -> maps:with([seen, kept, dropped, level, hooks], M);
                        _ -> #{}
                    end;
                _ -> maps:with([seen, kept, dropped, level], R#ring.stop_stats)
            end,
    Batches = queue:to_list(R#ring.batches),
    Trace#{id => self(), node => node(),
           state => case R#ring.state of
                        recording -> recording;
                        {stopped, Why} -> Why
                    end,
           started_ms => R#ring.started + Offset,
           expires_ms => R#ring.started + maps:get(until_ms, Opts) + Offset,
           now_ms => erlang:monotonic_time(millisecond) + Offset,
           traced => maps:get(traced, Info, 0), procs => maps:get(procs, Opts, all),
           max_bytes => maps:get(max_bytes, Opts), max_age_ms => maps:get(max_age_ms, Opts),
           held_bytes => R#ring.held, ring_bytes => R#ring.ring_bytes,
           batches => length(Batches),
           events => lists:sum([element(4, B) || {_, _, _, B} <- Batches]),
           evicted => R#ring.evicted, frozen => length(R#ring.frozen),
           ignored_triggers => R#ring.ignored, memory => flight_memory(R),
           triggers => maps:get(triggers, Opts, #{}), granularity => maps:get(level, Opts, 0)}.

%% What the recorder's processes hold on the node: their memory, and the
%% binaries they refer to (each counted once).
flight_memory(#ring{ctl = Ctl, info = Info}) ->
    Infos = [I || P <- [self(), Ctl, maps:get(tracer, Info)],
                  I <- [erlang:process_info(P, [memory, binary])], I =/= undefined],
    Binaries = maps:from_list([{Id, Size} || [_, {binary, Bs}] <- Infos, {Id, Size, _} <- Bs]),
    lists:sum([M || [{memory, M}, _] <- Infos]) + lists:sum(maps:values(Binaries)).

%%%===================================================================
%%% CONTROLLER
%%%===================================================================

-record(ctl, {owner, owner_ref, tracer, backend, procs = [], patterns = [],
              flags = [], opts, started, deadline_ref, monitor = none,
              %% state hooks: pid -> pending | installed | removed; the id is
              %% unique per trace, so a hook left from an earlier trace (inert,
              %% see state_hook/3) never blocks a new one
              hooks = #{}, hook_id, sampler, stop_flag,
              %% where hooks leave their reports (see REPORTS), and their drops
              reports, report_drops,
              %% watch_only (a flight recorder's counters level): the processes
              %% are monitored, not traced; pid -> true
              watched = #{},
              %% lines: the sink this trace replaced (line_sink_push/1), or none
              line_prev = none}).

controller_init(Caller, Owner, Opts0) ->
    process_flag(trap_exit, true),
    Opts = maps:merge(defaults(), Opts0),
    OwnerRef = erlang:monitor(process, Owner),
    case validate(Caller, Opts) of
        {error, Reason} ->
            Caller ! {self(), refused, Reason};
        {ok, Procs, Patterns, Swept} ->
            Backend0 = backend_kind(),
            MonitorMFAs = monitor_patterns(Backend0, Opts, Patterns),
            %% The controller raises this flag to stop the tracer ahead of its
            %% backlog: a message would wait behind every queued trace message.
            StopFlag = atomics:new(1, []),
            {Reports, Drops} = new_reports(),
            HookCost = case maps:get(state, Opts) of
                           true -> hook_overhead();
                           false -> 0
                       end,
            Tracer = spawn_opt(?MODULE, tracer_init,
                               [self(), Owner, Opts#{track_monitors => MonitorMFAs =/= [],
                                                     stop_flag => StopFlag,
                                                     hook_overhead => HookCost,
                                                     reports => Reports,
                                                     report_drops => Drops}],
                               [link, {message_queue_data, off_heap}]),
            Backend = backend(Backend0, Tracer),
            Flags = trace_flags(Opts, MonitorMFAs =/= []),
            Ctl0 = #ctl{owner = Owner, owner_ref = OwnerRef, tracer = Tracer,
                        backend = Backend, flags = Flags, opts = Opts,
                        started = erlang:monotonic_time(), stop_flag = StopFlag,
                        hook_id = {?HOOK_ID, Tracer}, reports = Reports, report_drops = Drops},
            Ctl1 = set_monitor_patterns(MonitorMFAs, set_patterns(Patterns, Ctl0)),
            Ctl2 = (case maps:get(watch_only, Opts, false) of
                        true -> watch_procs(Procs, Ctl1);
                        false -> trace_procs(Procs, Ctl1)
                    end)#ctl{monitor = set_monitor(Tracer, Opts)},
            Counted = case counting(Ctl2) of
                          true -> {Ctl2#ctl.backend, Ctl2#ctl.patterns};
                          false -> none
                      end,
            Sampler = spawn_link(?MODULE, sampler_init,
                                 [Tracer, Ctl2#ctl.procs,
                                  {maps:get(mailbox_ms, Opts), maps:get(adaptive, Opts), Counted}]),
            Ctl3 = case maps:get(duration_ms, Opts) of
                       infinity -> Ctl2#ctl{sampler = Sampler};
                       Ms -> Ctl2#ctl{sampler = Sampler,
                                      deadline_ref = erlang:send_after(Ms, self(), duration)}
                   end#ctl{line_prev = case maps:get(lines, Opts) of
                                           true -> line_sink_push(Tracer);
                                           false -> none
                                       end},
            %% The caller (an rpc from Python) is answered once tracing runs;
            %% what costs a pass over every traced process (hooks, links and
            %% monitors, names) follows as one details message to the owner,
            %% so a trace of a 50k-process node starts without waiting on it.
            Caller ! {self(), started,
                      (start_info(Ctl3, Procs, MonitorMFAs, HookCost))#{swept => Swept}},
            %% Hooks are asked for without waiting: a backlogged GenServer takes
            %% the request when it reaches it, so trace start never waits on the app.
            Ctl = case maps:get(state, Opts) of
                      true -> hook_states(Ctl3#ctl.procs, Ctl3);
                      false -> Ctl3
                  end,
            %% Taken after tracing began: a link or monitor made meanwhile is
            %% both here and an event, never in neither.
            Relations = relations(Ctl#ctl.procs, [self(), Tracer]),
            Owner ! {microscope_details, self(), start_details(Ctl, Relations)},
            %% Setting up (calibration, a pass over every process) leaves a
            %% heap the trace's life would otherwise carry.
            erlang:garbage_collect(),
            controller_loop(Ctl)
    end.

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
      monitors => monitor_tracking(maps:get(lifecycle, Opts), MonitorMFAs),
      time_offset => erlang:time_offset(),
      native_per_second => erlang:convert_time_unit(1, second, native),
      started => Ctl#ctl.started,
      node => node(),
      otp_release => erlang:system_info(otp_release)}.

%% As columns: on a 50k-process node the relations alone are 100k tuples of
%% pids, and decoding pid terms one by one is most of what Python spends.
start_details(Ctl, Relations) ->
    #{hooked => maps:size(Ctl#ctl.hooks),
      hook_requests => pid_list(maps:keys(Ctl#ctl.hooks)),
      relations => relation_columns(Relations),
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

%% PIDS: {microscope_pids, Nodes, Bin}, Bin holding per pid its node's index
%% in Nodes (16 bits) and its id, serial and creation (32 bits each), all
%% little-endian.
pid_list(Pids) ->
    Nodes = lists:usort([node(P) || P <- Pids]),
    NodeIx = maps:from_list(lists:zip(Nodes, lists:seq(0, length(Nodes) - 1))),
    {microscope_pids, Nodes,
     << <<(maps:get(node(P), NodeIx)):16/little, (pid_numbers(P))/binary>> || P <- Pids >>}.

pid_numbers(P) ->
    case term_to_binary(P) of
        <<131, 88, Rest/binary>> ->         % NEW_PID_EXT: 32-bit creation
            <<Id:32, Serial:32, Creation:32>> = binary:part(Rest, byte_size(Rest) - 12, 12),
            <<Id:32/little, Serial:32/little, Creation:32/little>>;
        <<131, 103, Rest/binary>> ->        % PID_EXT: 8-bit creation
            <<Id:32, Serial:32, Creation:8>> = binary:part(Rest, byte_size(Rest) - 9, 9),
            <<Id:32/little, Serial:32/little, Creation:32/little>>
    end.

%% RELATIONS: {microscope_relations, Pids, Bin}: Pids the distinct pids (as
%% PIDS), Bin per relation the holder's index (32 bits), the relation
%% (8 bits: 0 link, 1 monitor, 2 monitored_by) and the peer's index (32 bits).
relation_columns(Relations) ->
    Pids = lists:usort(lists:append([[A, B] || {A, _, B} <- Relations])),
    Ix = maps:from_list(lists:zip(Pids, lists:seq(0, length(Pids) - 1))),
    {microscope_relations, pid_list(Pids),
     << <<(maps:get(A, Ix)):32/little, (relation_code(R)):8, (maps:get(B, Ix)):32/little>>
        || {A, R, B} <- Relations >>}.

relation_code(link) -> 0;
relation_code(monitor) -> 1;
relation_code(monitored_by) -> 2.

defaults() ->
    #{procs => all, modules => [], messages => true, lifecycle => true,
      state => true, gc => false, max_events => 1000000, max_rate => 200000,
      duration_ms => infinity, payload_limit => 4096, batch_events => 2000,
      flush_ms => 50, shed_queue => 50000, max_queue => 500000, exclude => [],
      system_monitor => auto, long_gc_ms => 50, long_schedule_ms => 50,
      large_heap_words => 1000000, mailbox_ms => 100, sample => 1, adaptive => true,
      lines => true}.

controller_loop(Ctl = #ctl{owner_ref = OwnerRef, tracer = Tracer}) ->
    receive
        {'DOWN', OwnerRef, process, _, _} ->
            %% Detach, dropped connection or dead kernel: same cleanup. No
            %% notebook is left to unload this module (a kernel killed with
            %% kill -9 never detaches), so the controller does, once alone.
            cleanup(Ctl, owner_down),
            unload_when_alone();
        {stop, From, Ref} ->
            Stats = cleanup(Ctl, stopped),
            From ! {Ref, {ok, Stats}};
        {status, From, Ref} ->
            From ! {Ref, {ok, (tracer_stats(Tracer))#{hooks => hook_counts(Ctl)}}},
            controller_loop(Ctl);
        {trace_state, From, Ref} ->
            From ! {Ref, {ok, #{procs => Ctl#ctl.procs, patterns => Ctl#ctl.patterns,
                                hooks => Ctl#ctl.hooks, tracer => Tracer,
                                hook_id => Ctl#ctl.hook_id,
                                backend => element(1, Ctl#ctl.backend)}}},
            controller_loop(Ctl);
        {{microscope_hook, installed, P}, ok} ->
            %% The GenServer reached our install request: from its next
            %% callback on, every transition is recorded.
            Tracer ! {microscope_hook, P, 1, erlang:monotonic_time()},
            controller_loop(Ctl#ctl{hooks = (Ctl#ctl.hooks)#{P => installed}});
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
            controller_loop(Ctl);
        {eval, From, Ref, Lang, Code} ->
            Worker = spawn(fun() ->
                receive microscope_go -> From ! {Ref, eval_code(Lang, Code)} end
            end),
            From ! {Ref, worker, Worker},     % eval_traced/4 kills it past its timeout
            trace_one(Ctl#ctl.backend, Worker, Ctl#ctl.flags),
            Ctl#ctl.sampler ! {add, Worker},
            Worker ! microscope_go,
            controller_loop(Ctl#ctl{procs = [Worker | Ctl#ctl.procs]});
        {hook_later, Child} ->
            controller_loop(hook_states([Child], Ctl));
        {'EXIT', Tracer, Reason} ->
            cleanup(Ctl, {tracer_exit, Reason});
        {'DOWN', _, process, P, Reason} when is_map_key(P, Ctl#ctl.watched) ->
            Tracer ! {microscope_down, P, Reason, erlang:monotonic_time()},
            %% its supervisor restarts it at once: look for the new one soon
            [erlang:send_after(Ms, self(), rescan_now) || Ms <- [20, 100, 300]],
            controller_loop(Ctl#ctl{watched = maps:remove(P, Ctl#ctl.watched)});
        rescan ->
            erlang:send_after(rescan_ms(Ctl), self(), rescan),
            controller_loop(rescan(Ctl));
        rescan_now ->
            controller_loop(rescan(Ctl));
        _ ->
            controller_loop(Ctl)
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

notify_owner(#ctl{owner = Owner}, Reason, Stats) ->
    Owner ! {microscope_stopped, self(), Reason, Stats}.

%% Undo exactly what we did, then flush the tracer. Nothing here waits on a
%% traced process: hooks are asked to go (and go by themselves once the
%% tracer is gone), so a backlogged app cannot hold the stop.
cleanup(Ctl = #ctl{tracer = Tracer}, Reason) ->
    %% The last samples of the queues belong to the trace: taken before its
    %% end, so a backlog drained by the stop is seen drained.
    final_samples(Ctl#ctl.sampler),
    StopTs = erlang:monotonic_time(),
    %% From now on every hook of this trace removes itself at its next callback.
    atomics:put(Ctl#ctl.stop_flag, 1, 1),
    restore_monitor(Ctl#ctl.monitor, Tracer),
    line_sink_pop(Tracer, Ctl#ctl.line_prev),
    untrace_procs(Ctl),
    unset_patterns(Ctl),
    destroy_backend(Ctl#ctl.backend),
    unhook_states(Ctl),
    Pending = [P || {P, pending} <- maps:to_list(Ctl#ctl.hooks)],
    Stats = case is_process_alive(Tracer) of
                true -> finish_tracer(Ctl, Reason, StopTs);
                false -> #{}
            end,
    unlink(Tracer),
    exit(Tracer, shutdown),
    Stats#{hooks_pending_at_stop => length(Pending)}.

finish_tracer(#ctl{tracer = Tracer}, Reason, StopTs) ->
    case request(Tracer, fun(From, Ref) -> {finish, From, Ref, Reason, StopTs} end, 5000) of
        {ok, Stats} -> Stats;
        _ -> #{}
    end.

tracer_stats(Tracer) ->
    case request(Tracer, fun(From, Ref) -> {stats, From, Ref} end, 5000) of
        {ok, Stats} -> Stats;
        down -> #{state => stopped};
        timeout -> #{state => busy}
    end.

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

%% @doc At unload (Python's detach): what a trace killed before its cleanup
%% left behind. Modules are the modules= specs the session traced (call
%% patterns are swept by their functions; see sweep_orphans/1).
sweep(Modules) when is_list(Modules) ->
    Patterns = lists:usort(lists:flatmap(fun(Spec) ->
                                                 try resolve_pattern(Spec)
                                                 catch throw:{refused, _} -> []
                                                 end
                                         end, Modules)),
    #{lines => line_sink_sweep(), patterns => sweep_orphans(Patterns)}.

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
%%% REPORTS
%%%===================================================================

%% Hooks leave one report per callback in this table, keyed {TsOut, Pid, N}
%% so it is in time order; the tracer takes them at each batch, never ahead
%% of the trace messages still in its mailbox. Owned by the controller, so it
%% goes with the trace: a hook that outlives it fails its insert, and sys
%% drops a hook that fails. Hooks read the table's size before each insert
%% (the bound): with decentralized counters that read sums every
%% scheduler's counter (measured 4.7 us, more than all else a hook does),
%% with one counter it is one atomic read.
new_reports() ->
    {ets:new(microscope_reports, [ordered_set, public, {write_concurrency, true},
                                  {decentralized_counters, false}]),
     counters:new(1, [write_concurrency])}.

%%%===================================================================
%%% HOOK COST
%%%===================================================================

%% A hook times its own work (its report's insert included, one report
%% late), but not all it costs the process: sys's debug path around it is
%% outside that window. Measured once per trace, untraced, on a throwaway GenServer:
%% the median call with our hook (reporting into a table) minus the median call
%% without, minus what the hook measured itself. Added to every transition's
%% `tool' time, so the recording accounts for what tracing cost the app.
%% 1600 calls in 8 alternating blocks: about 10 ms at the start of a trace,
%% and a constant steady to a few tenths of a microsecond on a noisy host.
-define(CALIBRATION_CALLS, 1600).
-define(CALIBRATION_BLOCKS, 8).
hook_overhead() ->
    try
        {ok, G} = gen_server:start(?MODULE, calibration, []),
        {Reports, Drops} = new_reports(),
        Flag = atomics:new(1, []),
        [code:ensure_loaded(M) || M <- [sys, erts_debug]],
        Hook = {fun ?MODULE:state_hook/3,
                hook_state(Reports, Drops, Flag, 4096, gen_server, ?CALIBRATION_CALLS)},
        %% Alternating blocks, so a burst of load elsewhere falls on both sides.
        Blocks = [begin
                      P = call_times(G, ?CALIBRATION_CALLS div ?CALIBRATION_BLOCKS),
                      ok = sys:install(G, Hook),
                      H = call_times(G, ?CALIBRATION_CALLS div ?CALIBRATION_BLOCKS),
                      ok = sys:remove(G, element(1, Hook)),
                      {P, H}
                  end || _ <- lists:seq(1, ?CALIBRATION_BLOCKS)],
        Plain = lists:append([P || {P, _} <- Blocks]),
        Hooked = lists:append([H || {_, H} <- Blocks]),
        Own = median([perf_to_native(element(tuple_size(R), R))
                      || R <- ets:tab2list(Reports)] ++ [0]),
        atomics:put(Flag, 1, 1),
        gen_server:stop(G),
        ets:delete(Reports),
        max(0, round(median(Hooked) - median(Plain) - Own))
    catch _:_ -> 0
    end.

call_times(G, N) ->
    [begin
         T0 = erlang:monotonic_time(),
         _ = gen_server:call(G, ping),
         erlang:monotonic_time() - T0
     end || _ <- lists:seq(1, N)].

median(List) ->
    Sorted = lists:sort(List),
    lists:nth(max(1, length(Sorted) div 2), Sorted).

%% @private
init(calibration) -> {ok, #{count => 0}}.
%% @private
handle_call(ping, _From, S = #{count := C}) -> {reply, pong, S#{count := C + 1}}.
%% @private
handle_cast(_, S) -> {noreply, S}.

%%%===================================================================
%%% MAILBOX SAMPLER
%%%===================================================================

%% The receive trace event is no measure of a mailbox: before OTP 27 it
%% fires when the receiver moves messages from its outer signal queue,
%% which a busy process does late and in bulk. So every traced process's
%% real message_queue_len is read here, at the start, every Interval ms
%% (stretched so one round costs at most 2% of a scheduler) and at the
%% stop; a change becomes a `mailbox' event. Its own process: reading a
%% busy process's queue can wait for that process to be scheduled.
%%
%% With Load (an adaptive trace), each round also tells the tracer how busy
%% the schedulers were since the last ({microscope_load, PerMille}). The
%% scheduler_wall_time flag this needs is held per process: it goes back off
%% when the sampler ends, unless someone else holds it too.
%%
%% With Counted ({Backend, MFAs}: a counters level with modules=), each round
%% also sends each function's calls since the last ({microscope_calls, ...}).
sampler_init(Tracer, Procs, {Interval, Load, Counted}) ->
    Load andalso erlang:system_flag(scheduler_wall_time, true),
    Last = sample_round(Tracer, Procs, #{}),
    sampler_loop(Tracer, Procs, Last, Interval, now_ms() + Interval,
                 {wall_time(Load), Counted, count_calls(Tracer, Counted, #{})}).

%% Due is when the next round runs, in absolute time: an app that spawns
%% faster than Interval sends {add, P} that often, and a relative `after'
%% would start over at each one and never sample.
sampler_loop(Tracer, Procs, Last, Interval, Due, Node = {Wall, Counted, Calls}) ->
    receive
        {add, P} -> sampler_loop(Tracer, [P | Procs], Last, Interval, Due, Node);
        {final, From, Ref} ->
            sample_round(Tracer, Procs, Last),
            count_calls(Tracer, Counted, Calls),
            From ! {Ref, done}
    after max(0, Due - now_ms()) ->
        T0 = erlang:monotonic_time(microsecond),
        Last1 = sample_round(Tracer, Procs, Last),
        Node1 = {report_load(Tracer, Wall), Counted, count_calls(Tracer, Counted, Calls)},
        Cost = (erlang:monotonic_time(microsecond) - T0) div 1000,
        Alive = [P || P <- Procs, is_map_key(P, Last1)],
        sampler_loop(Tracer, Alive, Last1, Interval, now_ms() + max(Interval, 50 * Cost), Node1)
    end.

now_ms() -> erlang:monotonic_time(millisecond).

%% Each counted function's calls since the last round, as one event each.
count_calls(_Tracer, none, Calls) ->
    Calls;
count_calls(Tracer, {Backend, MFAs}, Calls) ->
    Ts = erlang:monotonic_time(),
    maps:from_list(
      [begin
           N = case call_count(Backend, MFA) of
                   {call_count, C} when is_integer(C) -> C;
                   _ -> maps:get(MFA, Calls, 0)
               end,
           Delta = N - maps:get(MFA, Calls, 0),
           Delta > 0 andalso (Tracer ! {microscope_calls, MFA, Delta, Ts}),
           {MFA, N}
       end || MFA <- MFAs]).

call_count({legacy, _}, MFA) -> erlang:trace_info(MFA, call_count);
call_count({session, S}, MFA) -> trace:info(S, MFA, call_count).

wall_time(false) -> none;
wall_time(true) ->
    case erlang:statistics(scheduler_wall_time) of
        undefined -> none;
        L -> [S || S = {Id, _, _} <- L, Id =< erlang:system_info(schedulers)]
    end.

%% Busy time over all time of the normal schedulers since the last round.
report_load(_Tracer, none) ->
    none;
report_load(Tracer, Before) ->
    case wall_time(true) of
        none -> none;
        Now ->
            {Active, Total} = lists:foldl(
                fun({{I, A0, T0}, {I, A1, T1}}, {A, T}) -> {A + A1 - A0, T + T1 - T0} end,
                {0, 0}, lists:zip(lists:sort(Before), lists:sort(Now))),
            Total > 0 andalso (Tracer ! {microscope_load, Active * 1000 div Total}),
            Now
    end.

%% A process appears in a round's result only while alive. Its length is
%% sent when it differs from the last one sent (a process never sampled
%% counts as 0, so the start sends exactly the non-empty mailboxes) and
%% also whenever the process has run since the last round, changed or not:
%% messages leave a queue in ways no trace event shows (a monitor's DOWN
%% flushed by demonitor, as every gen call and Task.await does), so a
%% model counted from receives and callbacks drifts, and each sample of an
%% active process puts it back on the node's own count. Its memory, heap
%% and reductions go too, when the process has run or its memory changed
%% (so an idle process costs nothing).
sample_round(Tracer, Procs, Last) ->
    lists:foldl(
      fun(P, Acc) ->
              case erlang:process_info(P, [message_queue_len, memory, total_heap_size,
                                           reductions]) of
                  [{message_queue_len, Len}, {memory, Mem}, {total_heap_size, Heap},
                   {reductions, Reds}] ->
                      Ts = erlang:monotonic_time(),
                      {LastLen, LastVitals} = maps:get(P, Last, {0, none}),
                      Vitals = {Mem, Reds},
                      Ran = LastVitals =/= none andalso Vitals =/= LastVitals,
                      (Len =:= LastLen andalso not Ran)
                          orelse (Tracer ! {microscope_mailbox, P, Len, Ts}),
                      Vitals =:= LastVitals
                          orelse (Tracer ! {microscope_vitals, P, Mem, Heap, Reds, Ts}),
                      Acc#{P => {Len, Vitals}};
                  undefined ->
                      Acc
              end
      end, #{}, Procs).

final_samples(Sampler) ->
    _ = request(Sampler, fun(From, Ref) -> {final, From, Ref} end, 500),
    unlink(Sampler),
    exit(Sampler, kill).

%%%===================================================================
%%% VALIDATION
%%%===================================================================

validate(Caller, Opts) ->
    try
        check_limits(Opts),
        Procs = resolve_procs(maps:get(procs, Opts), [Caller | maps:get(exclude, Opts)]),
        Patterns = lists:usort(lists:flatmap(fun resolve_pattern/1, maps:get(modules, Opts))),
        Swept = sweep_orphans(Patterns),
        has_sessions() orelse check_patterns_free(Patterns),
        {ok, Procs, Patterns, Swept}
    catch
        throw:{refused, Why} -> {error, Why}
    end.

check_limits(Opts) ->
    [throw({refused, {bad_limit, K, maps:get(K, Opts)}})
     || K <- [max_events, max_rate, payload_limit, batch_events, flush_ms,
              shed_queue, max_queue, long_gc_ms, long_schedule_ms, large_heap_words,
              mailbox_ms, sample],
        not (is_integer(maps:get(K, Opts)) andalso maps:get(K, Opts) > 0)],
    [throw({refused, {bad_limit, K, maps:get(K, Opts)}})
     || K <- [adaptive, lines], not is_boolean(maps:get(K, Opts))],
    %% what a payload may copy out of a traced process on every event
    maps:get(payload_limit, Opts) > ?MAX_PAYLOAD_LIMIT
        andalso throw({refused, {bad_limit, payload_limit, maps:get(payload_limit, Opts)}}),
    case maps:get(duration_ms, Opts) of
        infinity -> ok;
        D when is_integer(D), D > 0 -> ok;
        D -> throw({refused, {bad_limit, duration_ms, D}})
    end.

own_processes(Exclude) ->
    [self() | Exclude].

resolve_procs(all, Exclude) ->
    Skip = own_processes(Exclude),
    [P || P <- erlang:processes(), not lists:member(P, Skip), worth_tracing(P)];
resolve_procs(Specs, Exclude) when is_list(Specs) ->
    Skip = own_processes(Exclude),
    Roots = [resolve_proc(S) || S <- Specs],
    All = lists:usort(lists:flatmap(fun subtree/1, Roots)),
    [P || P <- All, not lists:member(P, Skip)].

resolve_proc(P) when is_pid(P) ->
    case is_process_alive(P) of
        true -> P;
        false -> throw({refused, {no_such_process, P}})
    end;
resolve_proc(<<"<", _/binary>> = Text) ->
    try list_to_pid(binary_to_list(Text)) of
        P -> resolve_proc(P)
    catch error:badarg -> throw({refused, {no_such_process, Text}})
    end;
resolve_proc(Name) when is_binary(Name) ->
    case existing_atom(Name) of
        {ok, A} ->
            case whereis(A) of
                undefined -> throw({refused, {no_such_process, Name}});
                P -> P
            end;
        error -> throw({refused, {no_such_process, Name}})
    end;
resolve_proc(Other) ->
    throw({refused, {bad_process, Other}}).

%% A supervisor stands for its whole subtree. Only a process known to be a
%% supervisor is asked for its children: the same call would crash a
%% GenServer that does not expect it.
subtree(P) ->
    case is_supervisor(P) of
        true ->
            Children = case catch supervisor:which_children(P) of
                           L when is_list(L) -> L;
                           _ -> []
                       end,
            [P | lists:flatmap(fun({_, C, _, _}) when is_pid(C) -> subtree(C);
                                  (_) -> [] end, Children)];
        false -> [P]
    end.

is_supervisor(P) ->
    case erlang:process_info(P, dictionary) of
        {dictionary, D} ->
            %% Elixir's DynamicSupervisor (and so Task.Supervisor, and any
            %% `use DynamicSupervisor') is a gen_server whose callback
            %% module is DynamicSupervisor itself; it answers which_children.
            case spawned_as(D, none) of
                {supervisor, _, _} -> true;
                {'Elixir.DynamicSupervisor', _, _} -> true;
                {M, _, _} -> lists:any(fun(B) -> lists:member(B, behaviours(M)) end,
                                       [supervisor, 'Elixir.DynamicSupervisor']);
                none -> false
            end;
        _ -> false
    end.

%% System processes stay out of an "everything" trace: kernel and stdlib
%% internals are noise to an application developer and some (the code
%% server, the distribution controllers) would trace our own traffic.
worth_tracing(P) ->
    case application:get_application(P) of
        {ok, App} -> not lists:member(App, system_apps());
        undefined ->
            case erlang:process_info(P, [registered_name, initial_call, current_function]) of
                undefined -> false;
                Info ->
                    {registered_name, Name} = lists:keyfind(registered_name, 1, Info),
                    {initial_call, {M, _, _}} = lists:keyfind(initial_call, 1, Info),
                    Current = case lists:keyfind(current_function, 1, Info) of
                                  {current_function, {CM, _, _}} -> CM;
                                  _ -> undefined
                              end,
                    %% rpc workers (ours among them) come and go; leave them out.
                    not lists:member(Name, system_names())
                        andalso not lists:member(M, system_modules())
                        andalso not lists:member(Current, [rpc, erpc, erl_eval])
            end
    end.

system_apps() ->
    [kernel, stdlib, elixir, logger, compiler, sasl, runtime_tools, iex, mix, crypto].

system_names() ->
    [init, erts_code_purger, erl_prim_loader, socket_registry, rex, net_kernel,
     erl_epmd, auth, global_name_server, global_group, code_server, user,
     user_drv, standard_error, logger, application_controller, kernel_sup,
     erl_signal_server, file_server_2, inet_db, kernel_refc,
     kernel_safe_sup, logger_sup, global_group_check, erl_distribution,
     net_sup, timer_server, 'Elixir.IEx.Broker', 'Elixir.IEx.Config',
     'Elixir.IEx.Pry'].

system_modules() ->
    [erts_code_purger, erts_literal_area_collector, erts_dirty_process_signal_handler,
     prim_file, socket_registry, erl_init, otp_ring0, init, application_master,
     group, user_drv, user_sup, prim_inet, inet_tcp_dist, dist_util, erl_eval,
     shell, rpc, erpc, ?MODULE].

resolve_pattern({ModB, FunB, Arity}) when is_binary(ModB) ->
    Mod = case existing_module(ModB) of
              {ok, M} -> M;
              error -> throw({refused, {no_such_module, ModB}})
          end,
    refuse_dangerous(Mod, FunB),
    Exports = [{F, A} || {F, A} <- Mod:module_info(functions)],
    Selected = [{Mod, F, A} || {F, A} <- Exports,
                               FunB =:= '_' orelse atom_to_binary(F, utf8) =:= FunB,
                               Arity =:= '_' orelse A =:= Arity],
    case Selected of
        [] -> throw({refused, {no_such_function, ModB, FunB, Arity}});
        _ -> Selected
    end;
resolve_pattern(Other) ->
    throw({refused, {bad_pattern, Other}}).

%% Every process runs these; a whole-module pattern on one would trace the
%% node into the ground. Single functions are allowed, under the limits.
refuse_dangerous(?MODULE, _) -> throw({refused, {dangerous, tracing_the_agent}});
refuse_dangerous(Mod, '_') ->
    case lists:member(Mod, [io, lists, erlang, io_lib, maps, ets, gen, gen_server,
                            gen_statem, proc_lib, sys, code, erts_internal, prim_inet]) of
        true -> throw({refused, {dangerous, {whole_module, Mod}}});
        false -> ok
    end;
refuse_dangerous(_, _) -> ok.

%% Module names come in as binaries; only existing atoms, or modules whose
%% .beam is on the code path (a bounded set), become atoms.
existing_module(Bin) ->
    case existing_atom(Bin) of
        {ok, M} ->
            case code:ensure_loaded(M) of
                {module, M} -> {ok, M};
                _ -> error
            end;
        error ->
            case code:where_is_file(binary_to_list(Bin) ++ ".beam") of
                non_existing -> error;
                _ ->
                    M = binary_to_atom(Bin, utf8),
                    case code:ensure_loaded(M) of
                        {module, M} -> {ok, M};
                        _ -> error
                    end
            end
    end.

existing_atom(Bin) ->
    try {ok, binary_to_existing_atom(Bin, utf8)}
    catch error:badarg -> error
    end.

%%%===================================================================
%%% SETUP: trace flags, patterns, sys hooks
%%%===================================================================

%% OTP 27+ has isolated trace sessions: nothing we do can disturb dbg,
%% recon or another tool, and destroying the session removes all of it.
has_sessions() ->
    code:ensure_loaded(trace) =:= {module, trace}
        andalso erlang:function_exported(trace, session_create, 3).

backend_kind() ->
    case has_sessions() of true -> session; false -> legacy end.

backend(session, Tracer) -> {session, trace:session_create(microscope, Tracer, [])};
backend(legacy, Tracer) -> {legacy, Tracer}.

destroy_backend({session, Session}) -> catch trace:session_destroy(Session), ok;
destroy_backend({legacy, _}) -> ok.

trace_flags(Opts, TrackMonitors) ->
    Base = [set_on_spawn, monotonic_timestamp],
    Msg = case maps:get(messages, Opts) of true -> [send, 'receive']; false -> [] end,
    %% procs is needed for spawn events, which also drive hooking new GenServers.
    Life = [procs],
    Calls = case {maps:get(modules, Opts), TrackMonitors} of {[], false} -> []; _ -> [call] end,
    Gc = case maps:get(gc, Opts) of true -> [garbage_collection]; false -> [] end,
    lists:append([Base, Msg, Life, Calls, Gc]).

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
    Found = try resolve_procs(maps:get(procs, Opts), [self() | maps:get(exclude, Opts)])
            catch throw:{refused, _} -> []
            end,
    New = [P || P <- Found, not is_map_key(P, Watched)],
    [begin erlang:monitor(process, P), Ctl#ctl.sampler ! {add, P} end || P <- New],
    Ctl#ctl{procs = New ++ Ctl#ctl.procs,
            watched = maps:merge(Watched, maps:from_list([{P, true} || P <- New]))}.

rescan_ms(#ctl{opts = #{procs := all}}) -> 10000;
rescan_ms(_) -> 1000.

trace_procs(Procs, Ctl = #ctl{backend = Backend, flags = Flags}) ->
    Traced = lists:filter(fun(P) -> trace_one(Backend, P, Flags) end, Procs),
    Ctl#ctl{procs = Traced}.

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

skipped_foreign(Requested, #ctl{procs = Traced}) ->
    %% A map, not lists:member: an everything-trace has one entry per process.
    Ours = maps:from_list([{P, true} || P <- Traced]),
    length([P || P <- Requested, not is_map_key(P, Ours), is_process_alive(P)]).

untrace_procs(#ctl{backend = {session, _}}) ->
    ok;  % session_destroy removes every flag of the session
untrace_procs(#ctl{backend = {legacy, Tracer}, flags = Flags}) ->
    %% Ours are the processes whose tracer is our tracer: the ones we set
    %% and the children that inherited it through set_on_spawn.
    [catch erlang:trace(P, false, Flags)
     || P <- erlang:processes(), erlang:trace_info(P, tracer) =:= {tracer, Tracer}],
    ok.

%% Monitors have no trace flag: they are seen by call-tracing the four BIFs
%% that make and remove them. The monitor a gen call makes for itself
%% (alias + demonitor option) is left out at the source: it lives for one
%% call, and the call is in the trace already. Before OTP 27 patterns are
%% global, so all four must be free of other tools' patterns, or monitors
%% go untracked; the same if the user patterns one of them, or if another
%% tool call-traces some process (our global patterns would add monitor
%% calls to its trace).
%% What a call pattern of ours asks for (sweep_orphans/1 knows ours by it).
-define(CALL_SPEC, [{'_', [], [{return_trace}, {exception_trace}]}]).
-define(MONITOR_MFAS, [{erlang, monitor, 2}, {erlang, monitor, 3},
                       {erlang, demonitor, 1}, {erlang, demonitor, 2}]).

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
monitor_match_spec({erlang, monitor, 3}) ->
    [{[process, '_', [{alias, demonitor}]], [], [{message, false}]},
     {[process, '_', '_'], [], [{return_trace}]}];
monitor_match_spec({erlang, demonitor, _}) ->
    true.

set_monitor_patterns(MFAs, Ctl = #ctl{backend = Backend}) ->
    [case Backend of
         {legacy, _} -> erlang:trace_pattern(MFA, monitor_match_spec(MFA), [local]);
         {session, S} -> trace:function(S, MFA, monitor_match_spec(MFA), [local])
     end || MFA <- MFAs],
    Ctl#ctl{patterns = Ctl#ctl.patterns ++ MFAs}.

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
                                       T <- [monitor_target(Target)], is_pid(T)]
                ++ [{P, monitored_by, W} || W <- By, is_pid(W), not lists:member(W, Own)]
    end.

monitor_target(P) when is_pid(P) -> P;
monitor_target(Name) when is_atom(Name) -> whereis(Name);
monitor_target({Name, Node}) when is_atom(Name), Node =:= node() -> whereis(Name);
monitor_target(_) -> none.

set_patterns([], Ctl) -> Ctl;
set_patterns(MFAs, Ctl = #ctl{backend = Backend}) ->
    %% Watching only (a recorder's counters level), the BEAM counts the calls
    %% (call_count: a counter per function, no message per call) and the
    %% sampler reads the counts.
    {MS, Flags} = case counting(Ctl) of
                      true -> {true, [call_count]};
                      false -> {?CALL_SPEC, [local]}
                  end,
    case Backend of
        {legacy, _} ->
            [erlang:trace_pattern(MFA, MS, Flags) || MFA <- MFAs];
        {session, S} ->
            [trace:function(S, MFA, MS, Flags) || MFA <- MFAs]
    end,
    Ctl#ctl{patterns = MFAs}.

counting(#ctl{opts = Opts}) ->
    maps:get(watch_only, Opts, false).

%% Patterns are global before OTP 27: refuse rather than overwrite a
%% pattern another tool (dbg, recon) set.
check_patterns_free(MFAs) ->
    case [MFA || MFA <- MFAs, erlang:trace_info(MFA, traced) =/= {traced, false}] of
        [] -> true;
        [{M, F, A} | _] -> throw({refused, {pattern_in_use, M, F, A}})
    end.

%% A controller killed outright (exit(Pid, kill), a purge of this module,
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

%% demonitor's spec (true) is anybody's: it is ours only beside our monitor's.
our_monitor_patterns() ->
    [Monitor2, Monitor3 | Demonitors] = ?MONITOR_MFAS,
    case our_pattern(Monitor2, monitor_match_spec(Monitor2))
        andalso our_pattern(Monitor3, monitor_match_spec(Monitor3)) of
        true -> [Monitor2, Monitor3 | [MFA || MFA <- Demonitors, our_pattern(MFA, [])]];
        false -> []
    end.

%% The patterns every other live controller holds, as each says; unknown if
%% one does not answer (busy setting up or stopping, or an older agent).
held_patterns() ->
    Me = self(),
    Others = [P || P <- erlang:processes(), P =/= Me,
                   erlang:process_info(P, initial_call)
                       =:= {initial_call, {?MODULE, controller_init, 3}}],
    lists:foldl(fun(_, unknown) -> unknown;
                   (P, {ok, Acc}) ->
                        case request(P, fun(From, Ref) -> {trace_state, From, Ref} end, 1000) of
                            {ok, {ok, #{patterns := Held}}} -> {ok, Held ++ Acc};
                            down -> {ok, Acc};
                            _ -> unknown
                        end
                end, {ok, []}, Others).

unset_patterns(Ctl = #ctl{backend = {legacy, _}, patterns = MFAs}) ->
    Flags = case counting(Ctl) of true -> [call_count]; false -> [local] end,
    [catch erlang:trace_pattern(MFA, false, Flags) || MFA <- MFAs],
    ok;
unset_patterns(_) ->
    ok.

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

%% A hook's own state (sys's FuncState), a record: read and updated twice per
%% callback inside the traced process, where a map costs more.
-record(hook, {reports, drops, limit, stop_flag, budget, kind,
               before = unknown,   % the state after the last callback seen
               pending = none,     % {Msg, PerfIn} between `in' and `out'
               large = false,      % the last state was over the budget
               room = true,        % the report table had room when last read
               last_insert = 0,    % what the last report's insert took
               n = 0}).            % callbacks reported

%% GenServer / gen_statem state capture through sys debug hooks.
%%
%% Nothing here waits on the process. The install request is a system
%% message sent as sys:install/3 would send it, but not waited for: the
%% process takes it in mailbox order, so behind a backlog the hook is
%% `pending' until the process reaches it (the reply tells the controller,
%% which records a `hook' event). Right behind it goes a replace_state
%% request whose fun only reports the state it is given and returns it
%% unchanged: the base the first hooked callback started from. Both come
%% from us, so a message someone else sends between the two is handled
%% hooked, and the tracer then knows its `before' is unknown rather than
%% taking a stale one.
hook_states(Procs, Ctl = #ctl{opts = Opts, hooks = Hooks, hook_id = Id, stop_flag = Flag,
                              reports = Reports, report_drops = Drops}) ->
    Budget = state_budget(Opts),
    %% Loaded here, not by the first traced process to need them: a code
    %% server call from inside the app would show as the app's own traffic.
    [code:ensure_loaded(M) || M <- [sys, erts_debug, gen, proc_lib]],
    %% Procs are ours (traced by us, or children that inherited our tracer):
    %% a process another tool traces gets no hook either.
    New = [{P, Kind} || P <- Procs, not is_map_key(P, Hooks), Kind <- [gen_kind(P)],
                        Kind =/= none],
    Self = self(),
    [begin
         FuncState = hook_state(Reports, Drops, Flag, Budget, Kind,
                                maps:get(shed_queue, Opts)),
         P ! {system, {Self, {microscope_hook, installed, P}},
              {debug, {install, {Id, fun ?MODULE:state_hook/3, FuncState}}}},
         P ! {system, {Self, {microscope_hook, based, P}},
              {replace_state, base_reporter(Reports, Kind, Budget)}}
     end || {P, Kind} <- New],
    Ctl#ctl{hooks = maps:merge(Hooks, maps:from_list([{P, pending} || {P, _} <- New]))}.

%% Words of state the hook may copy to the tracer per callback.
state_budget(Opts) -> maps:get(payload_limit, Opts).

hook_state(Reports, Drops, Flag, Budget, Kind, Limit) ->
    #hook{reports = Reports, drops = Drops, limit = Limit, stop_flag = Flag, budget = Budget,
          kind = Kind}.

base_reporter(Reports, Kind, Budget) ->
    fun(State) ->
            Base = case Kind of
                       gen_statem when is_tuple(State), tuple_size(State) =:= 2 -> element(1, State);
                       _ -> State
                   end,
            %% n = 0: the state the hook's first report starts from
            ets:insert(Reports, {{erlang:monotonic_time(), self(), 0}, base, bounded(Base, Budget)}),
            State
    end.

%% Removal is asked for, never waited for. A process that takes long to
%% reach the request cannot record anything meanwhile: its hook removes
%% itself at its next callback once the tracer is gone (state_hook/3).
unhook_states(#ctl{hooks = Hooks, hook_id = Id}) ->
    [P ! {system, {self(), {microscope_hook, removed, P}}, {debug, {remove, Id}}}
     || {P, _} <- maps:to_list(Hooks), is_process_alive(P)],
    ok.

%% What kind of gen process P is: its callback module's behaviours first,
%% then the loop it is waiting in (an Elixir Agent's initial call is a fun,
%% but it waits in gen_server's loop). Supervisors are left alone: their
%% state is their children, which the tree already shows.
gen_kind(P) ->
    case erlang:process_info(P, [dictionary, current_function]) of
        [{dictionary, D}, {current_function, Current}] ->
            %% A behaviour's process was started as {Callback, init, 1}; a plain
            %% loop proc_lib-spawned from a module that also declares one
            %% ({M, loop, N}) is no GenServer: a hook request would sit in its
            %% mailbox forever.
            case spawned_as(D, none) of
                {supervisor, _, _} -> none;
                {M, init, 1} ->
                    Bs = behaviours(M),
                    Gen = [K || {B, K} <- [{gen_server, gen_server}, {'Elixir.GenServer', gen_server},
                                           {'Elixir.Agent', gen_server}, {gen_statem, gen_statem}],
                                lists:member(B, Bs)],
                    case {lists:member(supervisor, Bs), Gen, Current} of
                        {true, _, _} -> none;
                        {false, [K | _], _} -> K;
                        {false, [], {gen_server, loop, _}} -> gen_server;
                        {false, [], {gen_statem, loop_receive, _}} -> gen_statem;
                        _ -> none
                    end;
                _ ->
                    case Current of
                        {gen_server, loop, _} -> gen_server;
                        {gen_statem, loop_receive, _} -> gen_statem;
                        _ -> none
                    end
            end;
        _ -> none
    end.

%% The function a proc_lib process (every OTP behaviour) was started with:
%% its own initial call is always proc_lib:init_p/5, the real one is kept in
%% its dictionary. Default for any other process.
spawned_as(Dictionary, Default) ->
    case lists:keyfind('$initial_call', 1, Dictionary) of
        {_, MFA} -> MFA;
        false -> Default
    end.

behaviours(M) ->
    try M:module_info(attributes) of
        Attrs -> lists:append([Bs || {K, Bs} <- Attrs, K =:= behaviour orelse K =:= behavior])
    catch _:_ -> []
    end.

%% @private Runs inside the traced GenServer on every callback, so it does
%% no work that grows with the state: an unchanged state is recognised by
%% identity (erts_debug:same/2, O(1)); a changed map or tuple is compared
%% by identity field by field, and only what changed is sent (within the
%% budget); any other state is sent whole only if a walk that stops at the
%% budget finds it small. The callback is timed from the moment it got the
%% message to the moment it returned, before any of our work, and the time
%% our own work took is sent along, so the tool's cost is on record.
%% Never raises (sys drops a hook that raises, the safe failure), and
%% removes itself (`done') once its trace has stopped: the stop flag is an
%% atomic, read without a message (is_process_alive/1 on another process
%% is a request and a reply message, which the trace would show).
state_hook(F = #hook{stop_flag = Flag}, Event, _Name) ->
    case atomics:get(Flag, 1) of
        0 -> hook_event(F, Event);
        _ -> done
    end.

%% Durations inside the callback are taken with os:perf_counter/0, a third
%% of erlang:monotonic_time/0's cost here; only the moment the callback
%% returned, which orders the report among trace messages, is monotonic.
%% The tracer converts (report_message/1), not the traced process.
hook_event(F, {in, Msg}) ->
    F#hook{pending = {Msg, os:perf_counter()}};
hook_event(F, {in, Msg, _StateName}) ->
    F#hook{pending = {Msg, os:perf_counter()}};
hook_event(F, {continue, _} = Msg) ->
    F#hook{pending = {Msg, os:perf_counter()}};
hook_event(F, {out, Reply, _From, NewState}) ->
    hook_out(F, NewState, {reply, Reply});
hook_event(F, {noreply, NewState}) ->
    hook_out(F, NewState, noreply);
hook_event(F = #hook{kind = gen_statem, pending = Pending}, {consume, Event, _State, Next}) ->
    Pending1 = case Pending of none -> {Event, os:perf_counter()}; _ -> Pending end,
    hook_out(F#hook{pending = Pending1}, Next, noreply);
hook_event(F, _Other) ->
    F.

hook_out(F = #hook{pending = none}, _NewState, _Reply) ->
    F;
hook_out(F = #hook{budget = Budget, kind = Kind, before = Before, large = Large0,
                   pending = {Msg, PerfIn}, n = N}, NewState, Reply) ->
    TsOut = erlang:monotonic_time(),
    PerfOut = os:perf_counter(),
    %% Every 64th callback a small state goes whole, so a tracer that lost
    %% some of our reports (shed under load) has a base again.
    {Capture, Large} = case N band 63 =:= 63 andalso not Large0 of
                           true -> whole(NewState, Budget);
                           false -> capture(Before, NewState, Budget, Large0)
                       end,
    Report = {{TsOut, self(), N + 1}, PerfOut - PerfIn, bounded_message(Msg, Budget), Capture,
              reply_capture(Reply, Budget), Kind},
    case leave_report(F, Report, PerfOut, N) of
        gone ->
            done;   % sys removes a hook that answers done
        {Room, Insert} ->
            F#hook{before = NewState, pending = none, large = Large, n = N + 1, room = Room,
                   last_insert = Insert}
    end.

%% A report goes into the trace's table, not to the tracer: a message would
%% wake the tracer's scheduler on every callback (measured: 2-3 us a call),
%% an insert wakes nobody; the tracer collects at each batch. A full table
%% (the tracer fell behind) drops the report, counted. The table's size is
%% read every 16th report (a read is a tenth of what the rest costs), so the
%% bound may be passed by 15 reports a process. The last element is the
%% hook's own time (perf_counter units): its work up to the insert, plus
%% what the previous insert took (an insert cannot carry its own time; it
%% varies with the table and the tracer's draining, so it is measured, not
%% calibrated). sys's debug path is in the calibration (hook_overhead/0).
%% A table gone (its controller killed outright, so the stop flag was never
%% raised) means the trace is gone: the hook goes too, within 16 callbacks.
leave_report(#hook{reports = Reports, drops = Drops, limit = Limit, room = Room,
                   last_insert = LastInsert}, Report, PerfOut, N) ->
    Room1 = case N band 15 of
                0 -> case ets:info(Reports, size) of
                         undefined -> gone;
                         Size -> Size < Limit
                     end;
                _ -> Room
            end,
    case Room1 of
        gone ->
            gone;
        true ->
            Before = os:perf_counter(),
            ets:insert(Reports, erlang:append_element(Report, Before - PerfOut + LastInsert)),
            {Room1, os:perf_counter() - Before};
        false ->
            counters:add(Drops, 1, 1),
            {Room1, 0}
    end.

%% A gen call's From ({Pid, Tag}) is small and fixed: only the request is
%% walked against the budget.
bounded_message({'$gen_call', From, Request}, Budget) ->
    {'$gen_call', From, bounded(Request, Budget)};
bounded_message({'$gen_cast', Request}, Budget) ->
    {'$gen_cast', bounded(Request, Budget)};
bounded_message(Msg, Budget) ->
    bounded(Msg, Budget).

reply_capture(noreply, _) -> noreply;
reply_capture({reply, R}, Budget) -> {reply, bounded(R, Budget)}.

%% {same} | {full, State} | {changes, [{Path, Value}], Complete} | {large}
capture(Before, New, Budget, Large) ->
    case erts_debug:same(Before, New) of
        true -> {same, Large};
        false when Before =:= unknown -> whole(New, Budget);
        false ->
            case changes(Before, New, Budget) of
                {Changes, Complete} when Changes =/= none -> {{changes, Changes, Complete}, Large};
                _ when Large -> {large, true};
                _ -> whole(New, Budget)
            end
    end.

whole(State, Budget) ->
    case fits(State, Budget) >= 0 of
        true -> {{full, State}, false};
        false -> {large, true}
    end.

%% Field-by-field changes between two maps (or two tuples of one size), by
%% identity, descending into changed maps and tuples; none for other shapes.
%% Complete is false when the budget ran out before every field was seen.
changes(B, A, Budget) when is_map(B), is_map(A); is_tuple(B), is_tuple(A),
                                                  tuple_size(B) =:= tuple_size(A) ->
    {Acc, Left} = changes([], B, A, [], Budget),
    {lists:reverse(Acc), Left >= 0};
changes(_, _, _) ->
    none.

changes(_Path, _B, _A, Acc, Left) when Left < 0 -> {Acc, Left};
changes(Path, B, A, Acc, Left) when is_map(B), is_map(A),
                                   (map_size(B) > ?DIFF_KEYS orelse map_size(A) > ?DIFF_KEYS) ->
    %% A big map (a cache, an index) is not walked on every callback: that
    %% work would grow with it. What is said of it costs nothing: its sizes.
    {[{lists:reverse(Path), {'$microscope_map', map_size(B), map_size(A)}} | Acc], Left - 1};
changes(Path, B, A, Acc, Left) when is_tuple(B), is_tuple(A), tuple_size(B) =:= tuple_size(A),
                                    tuple_size(B) > ?DIFF_KEYS ->
    {[{lists:reverse(Path), '$microscope_large'} | Acc], Left - 1};
changes(Path, B, A, Acc, Left) when is_map(B), is_map(A) ->
    %% Keys present now: changed or added; then, only if some key must have
    %% gone (fewer old keys kept than there were), the keys that went away.
    {Acc1, L1, Added} = map_changes(Path, B, maps:next(maps:iterator(A)), Acc, Left, 0),
    case map_size(A) - Added < map_size(B) of
        true -> removed_keys(Path, A, maps:next(maps:iterator(B)), Acc1, L1);
        false -> {Acc1, L1}
    end;
changes(Path, B, A, Acc, Left) when is_tuple(B), is_tuple(A), tuple_size(B) =:= tuple_size(A),
                                    tuple_size(B) > 0 ->
    tuple_changes(Path, B, A, 1, Acc, Left);
changes(Path, _B, A, Acc, Left) ->
    case fits(A, Left) of
        L when L >= 0 -> {[{lists:reverse(Path), A} | Acc], L - 1};
        L -> {[{lists:reverse(Path), '$microscope_large'} | Acc], L}
    end.

map_changes(_Path, _B, none, Acc, Left, Added) -> {Acc, Left, Added};
map_changes(_Path, _B, _It, Acc, Left, Added) when Left < 0 -> {Acc, Left, Added};
map_changes(Path, B, {K, V, It}, Acc, Left, Added) ->
    case B of
        #{K := Old} ->
            {Acc1, L1} = case erts_debug:same(Old, V) of
                             true -> {Acc, Left - 1};
                             false -> changes([{key, K} | Path], Old, V, Acc, Left - 1)
                         end,
            map_changes(Path, B, maps:next(It), Acc1, L1, Added);
        _ ->
            {Acc1, L1} = changes([{key, K} | Path], '$microscope_absent', V, Acc, Left - 1),
            map_changes(Path, B, maps:next(It), Acc1, L1, Added + 1)
    end.

removed_keys(_Path, _A, none, Acc, Left) -> {Acc, Left};
removed_keys(_Path, _A, _It, Acc, Left) when Left < 0 -> {Acc, Left};
removed_keys(Path, A, {K, _V, It}, Acc, Left) ->
    Acc1 = case is_map_key(K, A) of
               true -> Acc;
               false -> [{lists:reverse([{key, K} | Path]), '$microscope_absent'} | Acc]
           end,
    removed_keys(Path, A, maps:next(It), Acc1, Left - 1).

tuple_changes(_Path, B, _A, I, Acc, Left) when I > tuple_size(B); Left < 0 -> {Acc, Left};
tuple_changes(Path, B, A, I, Acc, Left) ->
    Old = element(I, B),
    New = element(I, A),
    {Acc1, L1} = case erts_debug:same(Old, New) of
                     true -> {Acc, Left - 1};
                     false -> changes([{elem, I} | Path], Old, New, Acc, Left - 1)
                 end,
    tuple_changes(Path, B, A, I + 1, Acc1, L1).

%% Term itself if a walk within Budget words finds its end, else a summary:
%% the cost is bounded by the budget, whatever the term's size.
bounded(Term, Budget) ->
    case fits(Term, Budget) >= 0 of
        true -> Term;
        false -> '$microscope_large'
    end.

%% Budget left after walking Term, roughly in words; negative once spent
%% (and then the walk stops).
fits(_, Left) when Left < 0 -> Left;
fits(T, Left) when is_atom(T); is_integer(T), T < (1 bsl 59), T > -(1 bsl 59) -> Left - 1;
fits(T, Left) when is_number(T) -> Left - 3;
fits(T, Left) when is_bitstring(T) -> Left - 2 - (byte_size(T) div 8);
fits([H | T], Left) -> fits(T, fits(H, Left - 1));
fits([], Left) -> Left;
fits(T, Left) when is_tuple(T) -> fits_tuple(T, 1, tuple_size(T), Left - 1);
fits(T, Left) when is_map(T), map_size(T) * 2 > Left -> -1;
fits(T, Left) when is_map(T) -> fits_map(maps:next(maps:iterator(T)), Left - 1);
fits(T, Left) when is_function(T) ->
    {env, Env} = erlang:fun_info(T, env),
    fits(Env, Left - 4);
fits(_, Left) -> Left - 3.  % pids, ports, references

fits_tuple(_T, I, N, Left) when I > N; Left < 0 -> Left;
fits_tuple(T, I, N, Left) -> fits_tuple(T, I + 1, N, fits(element(I, T), Left)).

fits_map(none, Left) -> Left;
fits_map(_, Left) when Left < 0 -> Left;
fits_map({K, V, It}, Left) -> fits_map(maps:next(It), fits(V, fits(K, Left))).

%%%===================================================================
%%% TRACER: limits -> batcher -> sender
%%%===================================================================

-record(tr, {controller, owner, batch_events, flush_ms, payload_limit, lifecycle = true,
             max_events, max_rate, shed_queue, max_queue,
             headers = [], payloads = [], pay_off = 0, in_batch = 0,
             seen = 0, kept = 0, dropped = 0, drop_since = none, batches = 0,
             intern = #{}, next_id = 1, defs = [],
             %% the rate window: its start, and how many were kept before it
             window_start, window_kept = 0, second, last_flush, stopped = false,
             %% when the tracer (and so any system monitor it holds) began
             started,
             %% seen bsr 8 at the last periodic check
             check = 0,
             %% monitor tracking: calls awaiting their return (pid -> target),
             %% and live monitors we reported (ref -> target pid or none)
             track_monitors = false, monitor_calls = #{}, monitors = #{},
             %% batches the distribution could not take yet, oldest first
             pending = [],
             %% raised by the controller to stop us ahead of our backlog
             stop_flag,
             %% what a hooked callback costs beyond what the hook measures itself
             hook_overhead = 0,
             %% the hooks' report table and drop counter (REPORTS), the drops
             %% already accounted for, and the newest trace message's time
             reports, report_drops, drops_counted = 0, last_ts, reports_active = false,
             %% how far behind the newest trace message reports are taken (1 ms)
             report_lag = 0,
             %% processes inside a call on our reports table (a hook's insert)
             own_calls = #{},
             %% the last state seen of each hooked process (pid -> state), to
             %% rebuild a whole state from the changes a hook sends
             states = #{},
             %% GRANULARITY: the level, the payload limit asked for, 1-in-N
             %% sampling of messages asked for, and the count toward the next kept one
             adaptive = true, level = 0, level_at = 0, full_payload_limit, sample = 1,
             sample_n = 0,
             %% batches handed to the connection: Python has everything once it
             %% has taken this many (rows != kept: drop and granularity rows)
             sent = 0,
             %% FLIGHT: feeding a ring (every batch defines its own ids, so the
             %% ring can drop any batch and the intern table stays small), and
             %% the triggers: crash (any | [name binary]), mailbox (a length),
             %% monitor ([long_gc | long_schedule | large_heap]); watch maps
             %% the pids of watched names to them, over the pids whose mailbox
             %% is past the length
             ring = false, triggers = #{}, watch = #{}, over = #{},
             %% a microscope_flush message is on its way (flush_timer/1)
             flush_timer = false,
             %% triggers fired by events of the batch being built, newest first
             fired = [],
             %% how busy the schedulers were at the sampler's last round (per mille)
             load = 0,
             %% FAST PATH on (false only to test it against the general path),
             %% and how many events it wrote
             fast_path = true, fast = 0,
             %% PRIORITY: low while we keep up, normal while we are behind
             priority = low}).

%% While the connection to Python is busy, a send would suspend the tracer
%% and its mailbox would grow unseen. Instead batches wait, as many as hold
%% shed_queue events (at least 16): the same bound as the tracer's own
%% mailbox, so raising shed_queue lets a flood wait out a slow notebook
%% instead of shedding. Beyond, the oldest is shed and counted like any
%% other drop.
-define(MIN_PENDING, 16).

tracer_init(Controller, Owner, Opts) ->
    process_flag(priority, low),
    Now = erlang:monotonic_time(),
    T = #tr{controller = Controller, owner = Owner,
                    batch_events = maps:get(batch_events, Opts),
                    flush_ms = maps:get(flush_ms, Opts),
                    payload_limit = maps:get(payload_limit, Opts),
                    full_payload_limit = maps:get(payload_limit, Opts),
                    sample = maps:get(sample, Opts, 1),
                    adaptive = maps:get(adaptive, Opts, true),
                    lifecycle = maps:get(lifecycle, Opts),
                    track_monitors = maps:get(track_monitors, Opts, false),
                    max_events = maps:get(max_events, Opts),
                    max_rate = maps:get(max_rate, Opts),
                    shed_queue = maps:get(shed_queue, Opts),
                    max_queue = maps:get(max_queue, Opts),
                    stop_flag = maps:get(stop_flag, Opts),
                    hook_overhead = maps:get(hook_overhead, Opts, 0),
                    reports = maps:get(reports, Opts),
                    reports_active = maps:get(state, Opts),
                    last_ts = Now,
                    report_drops = maps:get(report_drops, Opts),
                    window_start = Now, last_flush = Now, started = Now,
                    report_lag = erlang:convert_time_unit(1000, microsecond, native),
                    ring = maps:get(ring, Opts, false),
                    triggers = maps:get(triggers, Opts, #{}),
                    watch = watched_names(maps:get(triggers, Opts, #{})),
                    second = erlang:convert_time_unit(1, second, native),
                    fast_path = maps:get(fast_path, Opts, true)},
    tracer_loop(case maps:get(level, Opts, 0) of
                    0 -> T;
                    Level -> set_level(Level, T)
                end).

tracer_loop(T = #tr{flush_ms = FlushMs}) ->
    receive
        {finish, From, Ref, Reason, StopTs} ->
            finish(T, From, Ref, Reason, StopTs);
        {stats, From, Ref} ->
            From ! {Ref, stats(T, running)},
            tracer_loop(T);
        microscope_flush ->
            tracer_loop(flush(T#tr{flush_timer = false}));
        {microscope_load, PerMille} ->
            tracer_loop(T#tr{load = PerMille});
        {trace_ts, _, call, {erlang, demonitor, [Ref | _]}, _}
          when not is_map_key(Ref, T#tr.monitors) ->
            %% Every gen call ends by removing its own monitor: the commonest
            %% message here that is no event, so it takes the shortest path.
            tracer_loop(T);
        Msg ->
            tracer_loop(handle(Msg, T))
    after FlushMs ->
        %% Quiet: a chance to step granularity back up with no event to prompt it.
        {message_queue_len, Len} = erlang:process_info(self(), message_queue_len),
        tracer_loop(flush(regulate(Len, T)))
    end.

%% The trace ends at StopTs: what the traced processes did before it is
%% encoded (for a bounded time: 300 ms, plus 3 us for each message queued at
%% the stop, at most 10 s; the rest is counted as dropped), what reached us
%% from after it (a hook that ran on) is no part of the recording. The queue
%% is bounded by shed_queue while tracing, so the drain is too.
-define(FINISH_BUDGET_MS, 300).
-define(FINISH_MAX_MS, 10000).
finish(T, From, Ref, Reason, StopTs) ->
    %% The stop's drain is bounded by its budget, not stretched by a busy node.
    process_flag(priority, normal),
    {message_queue_len, Queued} = erlang:process_info(self(), message_queue_len),
    Budget = min(?FINISH_MAX_MS, ?FINISH_BUDGET_MS + Queued * 3 div 1000),
    Deadline = erlang:monotonic_time() + erlang:convert_time_unit(Budget, millisecond, native),
    T0 = drain_after_stop(T#tr{stopped = true}, StopTs, Deadline),
    T1 = take_reports(T0, StopTs, fun encode_counted/2),
    %% No shedding from here on: the last drop span is written, so
    %% everything left goes out, waiting for the connection if it must.
    T2 = flush_all(enqueue_batch(T1)),
    From ! {Ref, stats(T2, Reason)}.

stats(T, State) ->
    #{state => State, seen => T#tr.seen, kept => T#tr.kept, dropped => T#tr.dropped,
      batches => T#tr.batches, sent => T#tr.sent, level => T#tr.level, load => T#tr.load,
      fast => T#tr.fast}.

%% FAST PATH: at a flood nearly every message is a send or a plain receive
%% taken at level 0, with no hook reports to interleave, no drop span open,
%% no trigger fired and the rate window current. For those, fast/7 writes
%% the very event general/2 would, with one copy of the (large) #tr record
%% instead of two and none of the intermediate tuples: the tracer's cost per
%% event is most of what tracing costs a saturated node. Anything else goes
%% the general way, which stays the definition; a test runs the same
%% messages through both (fast_path => false) and compares the batches.
handle({trace_ts, P, send, Msg, To, Ts} = M, T) when not is_reference(To) ->
    fast(?K_SEND, P, To, Msg, Ts, M, T);
handle({trace_ts, P, 'receive', Msg, Ts} = M, T) ->
    case Msg of
        timeout -> general(M, T);
        microscope_go -> general(M, T);
        {'DOWN', _, _, _, _} -> general(M, T);
        _ -> fast(?K_RECEIVE, P, none, Msg, Ts, M, T)
    end;
handle(M, T) ->
    general(M, T).

fast(Kind, P, Peer, Msg, Ts, M, T = #tr{fast_path = true, reports_active = false, level = 0,
                                        sample = 1, stopped = false, drop_since = none,
                                        fired = [], kept = Kept, max_events = Max,
                                        window_kept = WindowKept, max_rate = Rate,
                                        in_batch = N})
  when Kept < Max, Kept - WindowKept < Rate, N > 0 ->
    %% The event's own time says whether the rate window may be due to roll
    %% (a clock read per event costs as much as the encoding); general/2
    %% rolls it, and only general/2 ever drops, by the clock.
    case Ts - T#tr.window_start >= T#tr.second orelse agent_traffic(Msg) of
        true ->
            general(M, T);
        false ->
            Bin0 = term_to_binary(Msg, [{minor_version, 2}]),
            {Flags, Bin} = case byte_size(Bin0) =< T#tr.payload_limit of
                               true -> {0, Bin0};
                               false -> {?F_TRUNCATED, term_to_binary({'$microscope_truncated',
                                                                       byte_size(Bin0)})}
                           end,
            {Pi, T1} = intern(id(P), T),
            {Peeri, T2} = intern(id(Peer), T1),
            Size = byte_size(Bin),
            PayOff = T2#tr.pay_off,
            Header = <<Kind:8, Flags:8, 0:16, Pi:32/little, Peeri:32/little, 0:32/little,
                       Ts:64/little-signed, PayOff:32/little, Size:32/little, 0:64/little-signed>>,
            maybe_flush(periodic_checks(
                T2#tr{headers = [Header | T2#tr.headers], payloads = [Bin | T2#tr.payloads],
                      pay_off = PayOff + Size, in_batch = N + 1, kept = Kept + 1,
                      seen = T2#tr.seen + 1, last_ts = max(Ts, T2#tr.last_ts),
                      fast = T2#tr.fast + 1}))
    end;
fast(_, _, _, _, _, M, T) ->
    general(M, T).

%% The path every other trace message takes: it copies the (large) #tr record
%% once for the event it adds and once for the counts, no more; the rate
%% window and the periodic checks read counts rather than keep their own.
general(Msg, T0) ->
    T = reports_before(Msg, T0, fun handle/2),
    %% What the granularity leaves out goes first, before admit would close
    %% the drop span: a run of them is one span, one dropped-count row.
    case thin(Msg, T) of
        {drop, T1} ->
            periodic_checks(count_drop(T1#tr{seen = T1#tr.seen + 1}));
        {keep, T1} ->
            case admit(T1) of
                {keep, T2} ->
                    maybe_flush(periodic_checks(encode_kept(Msg, T2)));
                {drop, T2} ->
                    periodic_checks(remember_state(Msg, T2#tr{seen = T2#tr.seen + 1}))
            end
    end.

%% GRANULARITY: how much the tracer keeps, stepped down as it falls behind
%% (its mailbox passes a quarter of shed_queue) and back up as it catches
%% up (under a fortieth), each step an event (K_GRANULARITY, aux = level):
%%   0  everything
%%   1  payloads capped at 256 bytes
%%   2  1 in 8 messages (sends and receives); lifecycle and state events all
%%   3  no messages, only lifecycle and state events: messages are counted
%% What a level leaves out is counted as dropped, in drop spans, so kept +
%% dropped = seen holds and the store knows which spans are complete.
%% sample => N keeps 1 in N messages at every level (N = 1: all).
-define(CAPPED_PAYLOAD, 256).

thin(Msg, T = #tr{level = Level, sample = Sample}) when Level >= 2; Sample > 1 ->
    case is_message(Msg) of
        false -> {keep, T};
        true when Level >= 3 -> {drop, T};
        true ->
            Every = case Level of 2 -> max(Sample, 8); _ -> Sample end,
            N = T#tr.sample_n + 1,
            case N >= Every of
                true -> {keep, T#tr{sample_n = 0}};
                false -> {drop, T#tr{sample_n = N}}
            end
    end;
thin(_, T) ->
    {keep, T}.

is_message({trace_ts, _, Dir, _, _}) -> Dir =:= 'receive';
is_message({trace_ts, _, Dir, _, _, _}) -> Dir =:= send orelse Dir =:= send_to_non_existing_process;
is_message(_) -> false.

%% One step toward what the backlog asks for, at most, per periodic check;
%% down at once, up only after half a second at a level (no flapping). With
%% the schedulers busy (BUSY_PERMILLE) the tracer steps down sooner (a tenth
%% of shed_queue behind) and does not step up: the node's work comes first.
-define(BUSY_PERMILLE, 950).
regulate(Len, T = #tr{adaptive = true, level = Level, shed_queue = Shed, load = Load}) ->
    Busy = Load >= ?BUSY_PERMILLE,
    if
        Len >= Shed div 4, Level < 3 -> set_level(Level + 1, T);
        Busy, Len >= Shed div 10, Level < 3 -> set_level(Level + 1, T);
        Len =< Shed div 40, Level > 0, not Busy ->
            Settled = erlang:monotonic_time() - T#tr.level_at
                >= erlang:convert_time_unit(500, millisecond, native),
            case Settled of
                true -> set_level(Level - 1, T);
                false -> T
            end;
        true -> T
    end;
regulate(_, T) ->
    T.

set_level(Level, T = #tr{full_payload_limit = Full}) ->
    Limit = case Level of 0 -> Full; _ -> min(Full, ?CAPPED_PAYLOAD) end,
    Now = erlang:monotonic_time(),
    {message_queue_len, Queue} = erlang:process_info(self(), message_queue_len),
    %% why: the tracer's backlog and the schedulers' load at the step
    Why = term_to_binary(#{queue => Queue, load_permille => T#tr.load}, [{minor_version, 2}]),
    add(?K_GRANULARITY, 0, 0, 0, 0, Now, Level, Why,
        T#tr{level = Level, level_at = Now, payload_limit = Limit, sample_n = 0}).

%% Before a trace message is encoded, the hooks' reports from before it: a
%% callback lands after the receive it handled and before the exit it led to.
%% Up to a little before the message's time (report_lag): trace messages of
%% different processes reach us slightly out of time order, and a callback
%% reported ahead of the receive it handled would take a lower seq.
reports_before({trace_ts, _, _, _, Ts}, T = #tr{reports_active = true, report_lag = Lag},
               Handle) ->
    take_reports(T, Ts - 1 - Lag, Handle);
reports_before({trace_ts, _, _, _, _, Ts}, T = #tr{reports_active = true, report_lag = Lag},
               Handle) ->
    take_reports(T, Ts - 1 - Lag, Handle);
reports_before(_, T, _) ->
    T.

encode_kept(Msg, T1) ->
    case encode_event(Msg, T1) of
        skip -> T1;
        T3 ->
            %% Most messages make one event; a monitor call makes none until
            %% its return, a 'DOWN' makes two. Count events, so
            %% kept + dropped = seen holds.
            Added = T3#tr.in_batch - T1#tr.in_batch,
            T3#tr{kept = T3#tr.kept + Added, seen = T3#tr.seen + Added}
    end.

%% At the stop: encoded whatever the limits (the events happened inside the
%% trace), but no more than max_events, and in order with the hooks' reports.
encode_counted(Msg, T0) ->
    T = reports_before(Msg, T0, fun encode_counted/2),
    case T#tr.kept >= T#tr.max_events of
        true -> count_drop(T#tr{seen = T#tr.seen + 1});
        false -> encode_kept(Msg, close_drop_span(T))
    end.

%% A dropped state event still moves the process's state on, so the next
%% kept one is rebuilt from the right base (and marked as following a gap).
remember_state({microscope_state, P, _, _, _, Capture, _, _, N, _}, T) ->
    {_, After} = rebuild(P, N, Capture, T),
    T#tr{states = (T#tr.states)#{P => {N, After}}};
remember_state({microscope_base, _, _} = Msg, T) ->
    encode_event(Msg, T);
remember_state(_, T) ->
    T.

%% Rate and count limits. Dropped events are counted, and a dropped span is
%% written as one `dropped' event when it ends.
admit(T = #tr{stopped = true}) ->
    {drop, count_drop(T)};
admit(T = #tr{kept = Kept, max_events = Max}) when Kept >= Max ->
    T#tr.controller ! {limit, max_events},
    {drop, count_drop(T#tr{stopped = true})};
admit(T0) ->
    Now = erlang:monotonic_time(),
    T = case Now - T0#tr.window_start >= T0#tr.second of
            true -> T0#tr{window_start = Now, window_kept = T0#tr.kept};
            false -> T0
        end,
    case T#tr.kept - T#tr.window_kept >= T#tr.max_rate of
        true -> {drop, count_drop(T)};
        false -> {keep, close_drop_span(T)}
    end.

count_drop(T = #tr{drop_since = none}) ->
    T#tr{dropped = T#tr.dropped + 1, drop_since = {erlang:monotonic_time(), 1}};
count_drop(T = #tr{drop_since = {Since, N}}) ->
    T#tr{dropped = T#tr.dropped + 1, drop_since = {Since, N + 1}}.

close_drop_span(T = #tr{drop_since = none}) -> T;
close_drop_span(T = #tr{drop_since = {Since, N}}) ->
    add(?K_DROPPED, 0, 0, 0, 0, Since, N, <<>>, T#tr{drop_since = none}).

%% Every 256 events: is our mailbox running away? Shed, or stop.
periodic_checks(T = #tr{seen = Seen, check = C}) when Seen bsr 8 =:= C ->
    T;
periodic_checks(T0 = #tr{stop_flag = Flag}) ->
    T = T0#tr{check = T0#tr.seen bsr 8},
    case atomics:get(Flag, 1) of
        1 ->
            %% The controller is stopping us: take its request ahead of the backlog.
            receive {finish, From, Ref, Reason, StopTs} ->
                finish(T, From, Ref, Reason, StopTs),
                exit(normal)
            after 0 -> ok
            end;
        0 -> ok
    end,
    {message_queue_len, Len} = erlang:process_info(self(), message_queue_len),
    prioritise(Len, T, T#tr.shed_queue).

%% PRIORITY: the node's own work comes first. While the tracer keeps up it
%% runs at low priority, so a traced process sharing its scheduler is never
%% kept waiting behind a tracer's time slice (measured: a ping-pong flood ran
%% ~10% slower beside a normal-priority tracer than beside a null one). Once
%% it falls behind (a tenth of shed_queue) it takes a normal share, so that
%% regulating and shedding its backlog cannot be starved by a busy node, and
%% goes back down once caught up (a fortieth). The stop's drain runs normal.
prioritise(Len, T = #tr{priority = low}, Shed) when Len >= Shed div 10 ->
    process_flag(priority, normal),
    limit_backlog(Len, T#tr{priority = normal});
prioritise(Len, T = #tr{priority = normal}, Shed) when Len =< Shed div 40 ->
    process_flag(priority, low),
    limit_backlog(Len, T#tr{priority = low});
prioritise(Len, T, _) ->
    limit_backlog(Len, T).

limit_backlog(Len, T) ->
    if
        Len >= T#tr.max_queue, not T#tr.stopped ->
            T#tr.controller ! {limit, overload},
            checked(shed(T#tr{stopped = true}));
        Len >= T#tr.shed_queue ->
            checked(shed(regulate(Len, T)));
        true ->
            regulate(Len, T)
    end.

checked(T) -> T#tr{check = T#tr.seen bsr 8}.

%% Discard what is queued now, counting it; a trace message costs one
%% receive here instead of an encode and a network send.
shed(T) ->
    {message_queue_len, Len} = erlang:process_info(self(), message_queue_len),
    shed(Len div 2, T).

shed(0, T) -> T;
shed(N, T) ->
    receive
        Msg when element(1, Msg) =:= trace_ts; element(1, Msg) =:= monitor ->
            shed(N - 1, count_drop(T#tr{seen = T#tr.seen + 1}))
    after 0 -> T
    end.

drain_after_stop(T, StopTs, Deadline) ->
    receive
        {finish, _, _, _, _} ->
            drain_after_stop(T, StopTs, Deadline);
        Msg when is_tuple(Msg) ->
            case event_ts(Msg) of
                Ts when is_integer(Ts), Ts > StopTs ->
                    drain_after_stop(T, StopTs, Deadline);
                none ->
                    drain_after_stop(T, StopTs, Deadline);
                _ ->
                    case erlang:monotonic_time() < Deadline of
                        true -> drain_after_stop(encode_counted(Msg, T), StopTs, Deadline);
                        false -> drain_after_stop(count_drop(T#tr{seen = T#tr.seen + 1}), StopTs,
                                                  Deadline)
                    end
            end;
        _ ->
            drain_after_stop(T, StopTs, Deadline)
    after 0 -> close_drop_span(T)
    end.

%% When a queued message happened; none for what is no event.
event_ts(Msg) when element(1, Msg) =:= trace_ts -> element(tuple_size(Msg), Msg);
event_ts({microscope_mailbox, _, _, Ts}) -> Ts;
event_ts({microscope_vitals, _, _, _, _, Ts}) -> Ts;
event_ts({microscope_hook, _, _, Ts}) -> Ts;
event_ts({microscope_down, _, _, Ts}) -> Ts;
event_ts({microscope_calls, _, _, Ts}) -> Ts;
event_ts({microscope_line, _, Ts, _, _, _, _, _}) -> Ts;
event_ts({monitor, _, _, _}) -> 0;
event_ts(_) -> none.

maybe_flush(T = #tr{fired = [_ | _] = Fired, owner = Ring}) ->
    %% Cleared before the flush: the hook reports it takes pass through here again.
    T1 = flush(T#tr{fired = []}),
    [Ring ! {microscope_trigger, self(), Why, Ts} || {Why, Ts} <- lists:reverse(Fired)],
    T1;
maybe_flush(T = #tr{in_batch = N, batch_events = Max}) when N >= Max ->
    flush(T);
maybe_flush(T = #tr{in_batch = N}) when N band 63 =:= 0 ->
    %% Time-based flush while events keep coming.
    Now = erlang:monotonic_time(),
    case Now - T#tr.last_flush >= erlang:convert_time_unit(T#tr.flush_ms, millisecond, native) of
        true -> flush(T);
        false -> T
    end;
maybe_flush(T) ->
    T.

flush(T) ->
    send_pending((enqueue_batch(take_reports(T)))#tr{last_flush = erlang:monotonic_time()}).

%% The hooks' reports up to the newest trace message handled (all of them
%% when our mailbox is empty), so a callback never lands ahead of the
%% receive it handled. Each goes through the limits like a trace message.
take_reports(T) ->
    {message_queue_len, Queued} = erlang:process_info(self(), message_queue_len),
    Until = case Queued of
                0 -> erlang:monotonic_time();
                _ -> T#tr.last_ts - T#tr.report_lag
            end,
    take_reports(T, Until, fun handle/2).

take_reports(T = #tr{reports = Reports, report_drops = Drops}, Until, Handle) ->
    Dropped = counters:get(Drops, 1) - T#tr.drops_counted,
    T1 = case Dropped of
             0 -> T;
             _ -> readd_drops(Dropped, T#tr{drops_counted = T#tr.drops_counted + Dropped,
                                            dropped = T#tr.dropped + Dropped,
                                            seen = T#tr.seen + Dropped})
         end,
    take_reports_until(ets:first(Reports), Reports, Until, Handle, T1).

take_reports_until({Ts, _, _} = Key, Reports, Until, Handle, T) when Ts =< Until ->
    T1 = case ets:take(Reports, Key) of
             [Report] -> Handle(report_message(Report), T);
             [] -> T
         end,
    take_reports_until(ets:first(Reports), Reports, Until, Handle, T1);
take_reports_until(_, _, _, _, T) ->
    T.

report_message({{_Ts, P, 0}, base, Base}) ->
    {microscope_base, P, Base};
report_message({{TsOut, P, N}, PerfIn, Msg, Capture, Reply, Kind, PerfTool}) ->
    {microscope_state, P, TsOut - perf_to_native(PerfIn), TsOut, Msg, Capture, Reply, Kind, N,
     perf_to_native(PerfTool)}.

perf_to_native(Perf) -> erlang:convert_time_unit(Perf, perf_counter, native).

%% The batch being built joins the ones waiting to be sent.
enqueue_batch(T = #tr{in_batch = 0, defs = []}) ->
    T;
enqueue_batch(T) ->
    Batch = #{no => T#tr.batches, events => T#tr.in_batch,
              headers => list_to_binary(lists:reverse(T#tr.headers)),
              payloads => list_to_binary(lists:reverse(T#tr.payloads)),
              defs => lists:reverse(T#tr.defs)},
    Fresh = case T#tr.ring of
                true -> T#tr{intern = #{}, next_id = 1};
                false -> T
            end,
    Fresh#tr{headers = [], payloads = [], pay_off = 0, in_batch = 0, defs = [],
             batches = T#tr.batches + 1, pending = T#tr.pending ++ [Batch]}.

batch_message(B, T) ->
    {microscope_batch, self(), maps:get(no, B), maps:get(events, B), maps:get(headers, B),
     maps:get(payloads, B), maps:get(defs, B), T#tr.seen, T#tr.dropped}.

send_pending(T = #tr{pending = []}) ->
    T;
send_pending(T = #tr{owner = Owner, pending = [B | Rest]}) ->
    case erlang:send(Owner, batch_message(B, T), [nosuspend]) of
        ok -> send_pending(T#tr{pending = Rest, sent = T#tr.sent + 1});
        nosuspend -> shed_pending(T)
    end.

%% The oldest waiting batch goes: its events count as dropped, its id
%% definitions move to the next batch (later events refer to them), and the
%% dropped-count rows it carried are written again.
shed_pending(T = #tr{pending = Pending, shed_queue = Shed, batch_events = Size}) ->
    case length(Pending) =< max(?MIN_PENDING, Shed div Size) of
        true -> T;
        false -> shed_oldest(T)
    end.

shed_oldest(T = #tr{pending = [Oldest, Next | Rest]}) ->
    %% Lost: its events from trace messages (kept until now, dropped from
    %% now); its dropped-count rows were counted already and only need
    %% writing again.
    Counts = dropped_counts(Oldest),
    Lost = maps:get(events, Oldest) - length(Counts) - granularity_rows(Oldest),
    Next1 = Next#{defs := maps:get(defs, Oldest) ++ maps:get(defs, Next)},
    T1 = T#tr{pending = [Next1 | Rest], kept = T#tr.kept - Lost,
              dropped = T#tr.dropped + Lost},
    shed_pending(readd_drops(Lost + lists:sum(Counts), T1)).

%% A batch's granularity rows: bookkeeping, like the dropped-count rows, not
%% trace messages kept.
granularity_rows(B) ->
    length([K || <<K:8, _:(?HEADER_BYTES - 1)/binary>> <= maps:get(headers, B),
                 K =:= ?K_GRANULARITY]).

%% The counts of a batch's dropped-count rows (events too, but not kept
%% trace messages), read back from its headers: aux is the last field.
dropped_counts(B) ->
    [Aux || <<Kind:8, _:(?HEADER_BYTES - 9)/binary, Aux:64/little-signed>> <= maps:get(headers, B),
            Kind =:= ?K_DROPPED].

readd_drops(0, T) -> T;
readd_drops(N, T = #tr{drop_since = none}) ->
    T#tr{drop_since = {erlang:monotonic_time(), N}};
readd_drops(N, T = #tr{drop_since = {Since, M}}) ->
    T#tr{drop_since = {Since, M + N}}.

%% At the end everything still waiting goes out, however long it takes.
flush_all(T = #tr{owner = Owner, pending = Pending}) ->
    [erlang:send(Owner, batch_message(B, T)) || B <- Pending],
    T#tr{pending = [], sent = T#tr.sent + length(Pending)}.

%% Trace message -> header + payload. Our own traffic (hook requests and
%% their replies, even those of an earlier trace that reach a dead pid) is
%% recognised by its tags, wherever it goes, and is no event. Hook reports
%% never travel as messages (REPORTS).
encode_event({trace_ts, _, Dir, Msg, _} = M, T) when Dir =:= 'receive' ->
    case agent_traffic(Msg) of
        true -> skip;
        false -> encode(M, T)
    end;
encode_event({trace_ts, _, Dir, Msg, _, _} = M, T)
  when Dir =:= send; Dir =:= send_to_non_existing_process ->
    case agent_traffic(Msg) of
        true -> skip;
        false -> encode(M, T)
    end;
encode_event(M, T) ->
    encode(M, T).

agent_traffic({system, {_, {microscope_hook, _, _}}, _}) -> true;
agent_traffic(Msg) when element(1, Msg) =:= microscope_line -> true;  % inspect_line to us
agent_traffic({{microscope_hook, _, _}, _}) -> true;
agent_traffic(_) -> false.

encode({trace_ts, P, 'receive', timeout, Ts}, T) ->
    %% A `receive ... after' that fired (Process.sleep, a gen_server timeout):
    %% no message arrived. (A message that is the bare atom `timeout' looks
    %% the same in the trace; Python pairs it with its send when it has one.)
    event(?K_TIMEOUT, P, none, none, Ts, 0, T);
encode({trace_ts, _, 'receive', microscope_go, _}, _) ->
    skip;  % the start signal of an eval_traced worker
encode({trace_ts, P, send, Msg, To, Ts}, T) when is_reference(To) ->
    %% A send to an alias: every gen call's reply goes to a fresh one. Interning
    %% each as a peer id would grow both id tables by one per call, forever;
    %% the alias is in the reply itself, and the receive it pairs with names
    %% the receiver.
    payload(?K_SEND, P, none, none, Ts, 0, Msg, T);
encode({trace_ts, P, send, Msg, To, Ts}, T) ->
    payload(?K_SEND, P, To, none, Ts, 0, Msg, T);
encode({trace_ts, P, send_to_non_existing_process, Msg, To, Ts}, T) ->
    payload(?K_SEND_TO_DEAD, P, To, none, Ts, 0, Msg, T);
encode({trace_ts, P, 'receive', {'DOWN', Ref, process, _, _} = Msg, Ts},
             T = #tr{monitors = Monitors}) when is_map_key(Ref, Monitors) ->
    %% The watcher learns its monitor ended: aux 1 marks this end.
    T1 = payload(?K_RECEIVE, P, none, none, Ts, 0, Msg, T),
    end_monitor(P, Ref, Ts, 1, T1);
encode({trace_ts, P, 'receive', Msg, Ts}, T) ->
    payload(?K_RECEIVE, P, none, none, Ts, 0, Msg, T);
encode({trace_ts, _, spawn, Child, _, _}, T = #tr{lifecycle = false}) ->
    T#tr.controller ! {spawned, Child},
    skip;
encode({trace_ts, _, Tag, _, _}, #tr{lifecycle = false})
  when Tag =:= exit; Tag =:= link; Tag =:= unlink; Tag =:= register; Tag =:= unregister ->
    skip;
encode({trace_ts, P, spawn, Child, {M, F, Args}, Ts}, T) ->
    T#tr.controller ! {spawned, Child},
    event(?K_SPAWN, P, Child, {M, F, arity(Args)}, Ts, 0, T);
encode({trace_ts, P, exit, Reason, Ts}, T) ->
    T1 = payload(?K_EXIT, P, none, none, Ts, 0, Reason,
                 T#tr{states = maps:remove(P, T#tr.states)}),
    crash_trigger(P, Reason, T1);
encode({trace_ts, P, link, P2, Ts}, T) ->
    event(?K_LINK, P, P2, none, Ts, 0, T);
encode({trace_ts, P, unlink, P2, Ts}, T) ->
    event(?K_UNLINK, P, P2, none, Ts, 0, T);
encode({trace_ts, P, register, Name, Ts}, T) ->
    event(?K_REGISTER, P, Name, none, Ts, 0, watch_name(P, Name, T));
encode({trace_ts, P, unregister, Name, Ts}, T) ->
    event(?K_UNREGISTER, P, Name, none, Ts, 0, T);
encode({trace_ts, P, call, {erlang, monitor, [process, Target | _]}, _}, T)
  when T#tr.track_monitors ->
    T#tr{monitor_calls = (T#tr.monitor_calls)#{P => Target}};
encode({trace_ts, P, return_from, {erlang, monitor, _}, Ref, Ts}, T)
  when T#tr.track_monitors ->
    case maps:take(P, T#tr.monitor_calls) of
        {Target, Calls} ->
            Peer = case monitor_target(Target) of
                       Pid when is_pid(Pid) -> Pid;
                       _ -> none
                   end,
            payload(?K_MONITOR, P, Peer, none, Ts, 0, {Ref, Target},
                    T#tr{monitor_calls = Calls, monitors = (T#tr.monitors)#{Ref => Peer}});
        error ->
            skip
    end;
encode({trace_ts, P, call, {erlang, demonitor, [Ref | _]}, Ts}, T)
  when T#tr.track_monitors ->
    case is_map_key(Ref, T#tr.monitors) of
        true -> end_monitor(P, Ref, Ts, 0, T);
        false -> skip  % a gen call's own monitor, or one older than the trace
    end;
%% A state hook writes its reports into our table from inside the traced
%% process: under modules=[":ets.insert/2"] those calls would read as the
%% app's. They, and their returns, are left out.
encode({trace_ts, P, call, {ets, _, [Tab | _]}, _}, T) when Tab =:= T#tr.reports ->
    T#tr{own_calls = (T#tr.own_calls)#{P => true}};
encode({trace_ts, P, return_from, {ets, _, _}, _, _}, T = #tr{own_calls = Own})
  when is_map_key(P, Own) ->
    T#tr{own_calls = maps:remove(P, Own)};
encode({trace_ts, P, exception_from, {ets, _, _}, _, _}, T = #tr{own_calls = Own})
  when is_map_key(P, Own) ->
    T#tr{own_calls = maps:remove(P, Own)};
encode({trace_ts, P, call, {M, F, Args}, Ts}, T) ->
    payload(?K_CALL, P, none, {M, F, arity(Args)}, Ts, 0, Args, T);
encode({trace_ts, P, return_from, MFA, Ret, Ts}, T) ->
    payload(?K_RETURN, P, none, MFA, Ts, 0, Ret, T);
encode({trace_ts, P, exception_from, MFA, ClassValue, Ts}, T) ->
    payload(?K_EXCEPTION, P, none, MFA, Ts, 0, ClassValue, T);
encode({trace_ts, P, gc_major_end, Info, Ts}, T) ->
    payload(?K_GC, P, none, none, Ts, 1, Info, T);
encode({trace_ts, P, gc_minor_end, Info, Ts}, T) ->
    payload(?K_GC, P, none, none, Ts, 0, Info, T);
encode({microscope_state, P, TsIn, TsOut, Msg, Capture, Reply, Kind, N, ToolNs}, T) ->
    {Before, After} = rebuild(P, N, Capture, T),
    Changes = case Capture of
                  {changes, Cs, Complete} -> {Cs, Complete};
                  same -> {[], true};   % unchanged, by identity
                  _ -> none
              end,
    Extra = #{n => N, tool => ToolNs + T#tr.hook_overhead, changes => Changes},
    payload(?K_STATE, P, none, none, TsOut, TsOut - TsIn, {Msg, Before, After, Reply, Kind, Extra},
            T#tr{states = (T#tr.states)#{P => {N, After}}});
encode({microscope_base, P, Base}, T) ->
    %% The state a hooked process had when it took our install request; the
    %% hook's own reports count from there (n = 0).
    T#tr{states = (T#tr.states)#{P => {0, Base}}};
encode({microscope_hook, P, How, Ts}, T) ->
    event(?K_HOOK, P, none, none, Ts, How, T);
encode({microscope_down, P, Reason, Ts}, T) ->
    %% A watched (not traced) process ended: its exit, seen through a monitor.
    encode({trace_ts, P, exit, Reason, Ts}, T);
encode({microscope_calls, MFA, Delta, Ts}, T) ->
    event(?K_CALL_COUNT, none, none, MFA, Ts, Delta, T);
encode({microscope_mailbox, P, Len, Ts}, T) ->
    mailbox_trigger(P, Len, event(?K_MAILBOX, P, none, none, Ts, Len, T));
encode({microscope_vitals, P, Mem, Heap, Reds, Ts}, T) ->
    payload(?K_VITALS, P, none, none, Ts, Mem,
            #{memory => Mem, heap_words => Heap, reductions => Reds}, T);
encode({monitor, P, _, _} = Msg, T) when is_pid(P) ->
    case agent_process(P) of
        true -> skip;  % our own work is not the app's
        false ->
            case monitor_event(Msg, T) of
                skip -> skip;
                T1 -> monitor_trigger(element(3, Msg), P, T1)
            end
    end;
encode({microscope_line, P, Ts, Label, {M, F, A} = MFA, File, Line, Binding}, T)
  when is_pid(P), is_integer(Ts), is_atom(M), is_atom(F), is_integer(A), is_integer(Line) ->
    payload(?K_LINE, P, none, MFA, Ts, Line, {Label, File, Binding}, T);
encode(_Other, _T) ->
    %% spawned, getting_linked, gc_*_start, return_to ...: the other side
    %% of an event we already record, or noise.
    skip.

%% FLIGHT triggers: the tracer tells the ring when something worth keeping
%% happened; the ring freezes a copy a moment later (so the copy holds what
%% followed too). Checked only on the rare events that can fire them.
crash_trigger(P, Reason, T = #tr{triggers = #{crash := Which}}) when Reason =/= normal,
                                                                    Reason =/= shutdown ->
    Crashed = case Reason of
                  {shutdown, _} -> false;
                  _ -> Which =:= any orelse is_map_key(P, T#tr.watch)
              end,
    case Crashed of
        true -> fire({crash, maps:get(P, T#tr.watch, P), Reason}, T);
        false -> T
    end;
crash_trigger(_, _, T) ->
    T.

%% A watched name registered again (a restarted worker): its new pid is watched.
watch_name(P, Name, T = #tr{triggers = #{crash := Names}}) when is_list(Names) ->
    case lists:member(atom_to_binary(Name, utf8), Names) of
        true -> T#tr{watch = (T#tr.watch)#{P => Name}};
        false -> T
    end;
watch_name(_, _, T) ->
    T.

watched_names(#{crash := Names}) when is_list(Names) ->
    maps:from_list([{P, A} || N <- Names, {ok, A} <- [existing_atom(N)],
                              P <- [whereis(A)], is_pid(P)]);
watched_names(_) ->
    #{}.

%% Fires as a mailbox passes the length, once until it falls back under it.
mailbox_trigger(P, Len, T = #tr{triggers = #{mailbox := Limit}, over = Over}) ->
    case {Len >= Limit, is_map_key(P, Over)} of
        {true, false} -> fire({mailbox, P, Len}, T#tr{over = Over#{P => true}});
        {false, true} -> T#tr{over = maps:remove(P, Over)};
        _ -> T
    end;
mailbox_trigger(_, _, T) ->
    T.

monitor_trigger(What, P, T = #tr{triggers = #{monitor := Kinds}}) ->
    case lists:member(What, Kinds) of
        true -> fire({What, P}, T);
        false -> T
    end;
monitor_trigger(_, _, T) ->
    T.

%% Told once the event that fired has gone to the ring (maybe_flush/1): the
%% copy must hold it.
fire(Why, T) ->
    T#tr{fired = [{Why, erlang:monotonic_time()} | T#tr.fired]}.

%% The agent's processes (controller, tracer, sampler) and whatever is
%% running agent code right now (the rpc that starts or stops a trace).
agent_process(P) when P =:= self() -> true;
agent_process(P) ->
    case erlang:process_info(P, [initial_call, current_function]) of
        [{initial_call, {M1, _, _}}, {current_function, {M2, _, _}}] ->
            M1 =:= ?MODULE orelse M2 =:= ?MODULE;
        _ -> false
    end.

%% The state a hook's report leads to, from the last one we know of the
%% process (rebuilt only when no report in between is missing).
rebuild(P, N, Capture, T) ->
    Before = case maps:get(P, T#tr.states, none) of
                 {M, S} when M =:= N - 1 -> S;
                 _ -> '$microscope_unknown'
             end,
    After = case Capture of
                same -> Before;
                {full, S1} -> S1;
                large -> '$microscope_large';
                {changes, Cs, true} when Before =/= '$microscope_unknown',
                                         Before =/= '$microscope_large' ->
                    apply_changes(Before, Cs);
                {changes, _, _} when Before =:= '$microscope_unknown' -> '$microscope_unknown';
                {changes, _, _} -> '$microscope_large'
            end,
    {Before, After}.

apply_changes(State, []) -> State;
apply_changes(_State, [{_, '$microscope_large'} | _]) -> '$microscope_large';
apply_changes(_State, [{[], {'$microscope_map', _, _}} | _]) -> '$microscope_large';
apply_changes(State, [{Path, {'$microscope_map', _, _}} | Rest]) ->
    %% a big map the hook did not walk: not copied here either
    apply_changes(put_path(State, Path, '$microscope_large'), Rest);
apply_changes(State, [{Path, Value} | Rest]) -> apply_changes(put_path(State, Path, Value), Rest).

put_path(_Term, [], Value) -> Value;
put_path(Map, [{key, K}], '$microscope_absent') when is_map(Map) -> maps:remove(K, Map);
put_path(Map, [{key, K} | Rest], Value) when is_map(Map) ->
    Map#{K => put_path(maps:get(K, Map, '$microscope_absent'), Rest, Value)};
put_path(Tuple, [{elem, I} | Rest], Value) when is_tuple(Tuple) ->
    setelement(I, Tuple, put_path(element(I, Tuple), Rest, Value)).

%% System monitor reports carry no timestamp: they are stamped on arrival.
%% A long_gc longer than our monitor has been set is impossible: OTP 25
%% reports the VM's uptime as the duration of a collection that began
%% before the monitor was switched on (seen at 5.8-12.3 s in processes
%% younger than that). It is left out, not shown as a pause.
monitor_event({monitor, P, long_gc, Info}, T = #tr{started = Started}) ->
    Now = erlang:monotonic_time(),
    Ms = info_value(timeout, Info),
    case Ms > erlang:convert_time_unit(Now - Started, native, millisecond) of
        true -> skip;
        false -> payload(?K_LONG_GC, P, none, none, Now, Ms, Info, T)
    end;
monitor_event({monitor, P, long_schedule, Info}, T) ->
    payload(?K_LONG_SCHEDULE, P, none, none, erlang:monotonic_time(), info_value(timeout, Info),
            Info, T);
monitor_event({monitor, P, large_heap, Info}, T) ->
    %% The figure large_heap compares with its threshold: the allocated
    %% young and old heap blocks, not the part of them in use.
    Words = info_value(heap_block_size, Info) + info_value(old_heap_block_size, Info),
    payload(?K_LARGE_HEAP, P, none, none, erlang:monotonic_time(), Words, Info, T);
monitor_event(_Other, _T) ->
    skip.

end_monitor(P, Ref, Ts, How, T) ->
    {Peer, Monitors} = maps:take(Ref, T#tr.monitors),
    payload(?K_DEMONITOR, P, Peer, none, Ts, How, Ref, T#tr{monitors = Monitors}).

info_value(Key, Info) ->
    case lists:keyfind(Key, 1, Info) of
        {Key, V} when is_integer(V) -> V;
        _ -> 0
    end.

arity(Args) when is_list(Args) -> length(Args);
arity(A) when is_integer(A) -> A.

payload(Kind, P, Peer, MFA, Ts, Aux, Term, T = #tr{payload_limit = Limit0}) ->
    %% A state event carries two states, a message and a reply.
    Limit = case Kind of ?K_STATE -> Limit0 * 8; _ -> Limit0 end,
    %% Atoms as UTF-8 on every release (OTP 25's default is Latin-1, 26+'s
    %% UTF-8): the same message sent on one node and received on another of a
    %% mixed cluster has the same bytes, which is how sends and receives pair.
    Bin = term_to_binary(Term, [{minor_version, 2}]),
    case byte_size(Bin) =< Limit of
        true ->
            add(Kind, 0, id(P), id(Peer), id(MFA), Ts, Aux, Bin, T);
        false ->
            Summary = term_to_binary({'$microscope_truncated', byte_size(Bin)}),
            add(Kind, ?F_TRUNCATED, id(P), id(Peer), id(MFA), Ts, Aux, Summary, T)
    end.

event(Kind, P, Peer, MFA, Ts, Aux, T) ->
    add(Kind, 0, id(P), id(Peer), id(MFA), Ts, Aux, <<>>, T).

%% Identifiers (pids, names, MFAs) are interned per trace and defined once,
%% so a header stays fixed-width and the Python side never re-decodes them.
-define(ID(X), {intern, X}).
id(none) -> 0;
id(X) -> ?ID(X).

add(Kind, Flags, P0, Peer0, MFA0, Ts, Aux, Bin, T0) ->
    {P, T1} = intern(P0, T0),
    {Peer, T2} = intern(Peer0, T1),
    {MFA, T3} = intern(MFA0, T2),
    Size = byte_size(Bin),
    Header = <<Kind:8, Flags:8, 0:16, P:32/little, Peer:32/little, MFA:32/little,
              Ts:64/little-signed, (T3#tr.pay_off):32/little, Size:32/little,
              Aux:64/little-signed>>,
    T4 = case T3#tr.in_batch of
             0 -> flush_timer(T3);
             _ -> T3
         end,
    T4#tr{headers = [Header | T4#tr.headers], last_ts = max(Ts, T4#tr.last_ts),
          payloads = case Size of 0 -> T4#tr.payloads; _ -> [Bin | T4#tr.payloads] end,
          pay_off = T4#tr.pay_off + Size, in_batch = T4#tr.in_batch + 1}.

%% A batch leaves within flush_ms of its first event, however slowly the
%% rest trickle in (a trickle never lets the loop's idle timeout fire).
flush_timer(T = #tr{flush_timer = false, flush_ms = Ms}) ->
    erlang:send_after(Ms, self(), microscope_flush),
    T#tr{flush_timer = true};
flush_timer(T) ->
    T.

intern(0, T) -> {0, T};
intern(N, T) when is_integer(N) -> {N, T};
intern(?ID(X), T = #tr{intern = Map}) ->
    case Map of
        #{X := Id} -> {Id, T};
        _ ->
            Id = T#tr.next_id,
            {Id, T#tr{intern = Map#{X => Id}, next_id = Id + 1, defs = [{Id, X} | T#tr.defs]}}
    end.
