%%% @doc GenServer and gen_statem state capture through sys debug hooks:
%%% the hook that runs inside the app's processes, and how the tracer reads
%%% what it leaves.
%%%
%%% ```
%%%   Ctx = context(Tracer, StopFlag, new_reports(), Opts),
%%%   Pending = install(Procs, AlreadyHooked, Ctx),   % asked, never waited for
%%%   ... every callback: state_hook/3 -> one report in the trace's table
%%%   ... the tracer: report_message/1, rebuild/3 -> `state' events
%%%   remove(Pids, Ctx)                               % and each hook goes by itself
%%% '''
%%%
%%% The hook runs on every callback of a traced GenServer, inside it, so it
%%% does no work that grows with the state: identity comparisons, changes
%%% within a budget, a report into an ETS table rather than a message (which
%%% would wake the tracer at every callback). What a hook cannot time itself
%%% (sys's debug path around it) is measured once per trace on a throwaway
%%% GenServer (overhead/0). Every hook of a trace removes itself once the
%%% trace's stop flag is raised: a backlogged process never holds a stop.
-module(microscope_agent_state).
-include("microscope_agent.hrl").

-export([new_reports/0, overhead/0, context/4, hook_id/1, install/3, remove/2]).
%% a gen_statem's data and callbacks: its callback module call-traced, for it alone
-export([watch_statems/4, unwatch_statems/2]).
%% the tracer's side: a report as a message, a state rebuilt from its changes
-export([report_message/1, rebuild/3]).
%% @private the sys debug hook
-export([state_hook/3]).
%% @private the throwaway GenServer that measures what a hook costs
-export([init/1, handle_call/3, handle_cast/2]).

-define(HOOK_ID, microscope_state_hook).
%% Maps and tuples larger than this are not compared field by field in a
%% state hook (OTP keeps maps up to 32 keys flat, cheap to walk).
-define(DIFF_KEYS, 32).

%%%===================================================================
%%% STATE OF A HOOK, AND ITS REPORTS
%%%===================================================================

%% A hook's own state (sys's FuncState), a record: read and updated twice per
%% callback inside the traced process, where a map costs more.
-record(hook, {reports, drops, limit, stop_flag, budget, kind,
               before = unknown,   % the state after the last callback seen
               pending = none,     % {Msg, PerfIn} between `in' and `out'
               large = false,      % the last state was over the budget
               room = true,        % the report table had room when last read
               last_insert = 0,    % what the last report's insert took
               n = 0,              % callbacks reported
               %% a gen_statem's event: the replies it made ({From, Reply}),
               %% and whether it came from the mailbox (an `in' was seen)
               replies = [],
               in = false}).

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
overhead() ->
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
%%% INSTALL, REMOVE
%%%===================================================================

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
%%
%% What a trace's hooks share: their id (unique per trace, so a hook left
%% from an earlier trace, inert, never blocks a new one), the report table
%% and its drop counter, the stop flag, the budget and the table's bound.
context(Tracer, StopFlag, {Reports, Drops}, Opts) ->
    #{id => {?HOOK_ID, Tracer}, stop_flag => StopFlag, reports => Reports, drops => Drops,
      budget => state_budget(Opts), limit => maps:get(shed_queue, Opts)}.

hook_id(#{id := Id}) -> Id.

%% Asks every gen process among Procs and not in Known for a hook; returns
%% the ones asked (each pending until it takes the request), and the
%% gen_statems among them with their callback module ({Pid, Module}, for
%% watch_statems/4).
install(Procs, Known, #{id := Id, stop_flag := Flag, reports := Reports, drops := Drops,
                        budget := Budget, limit := Limit}) ->
    %% Loaded here, not by the first traced process to need them: a code
    %% server call from inside the app would show as the app's own traffic.
    [code:ensure_loaded(M) || M <- [sys, erts_debug, gen, proc_lib]],
    Found = [{P, gen_kind(P)} || P <- Procs, not is_map_key(P, Known)],
    New = [{P, Kind} || {P, {Kind, _}} <- Found, Kind =/= none],
    Self = self(),
    [begin
         FuncState = hook_state(Reports, Drops, Flag, Budget, Kind, Limit),
         P ! {system, {Self, {microscope_hook, installed, P}},
              {debug, {install, {Id, fun ?MODULE:state_hook/3, FuncState}}}},
         P ! {system, {Self, {microscope_hook, based, P}},
              {replace_state, base_reporter(Reports, Kind, Budget)}}
     end || {P, Kind} <- New],
    {[P || {P, _} <- New], [{P, M} || {P, {gen_statem, M}} <- Found, M =/= none]}.

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
remove(Pids, #{id := Id}) ->
    [P ! {system, {self(), {microscope_hook, removed, P}}, {debug, {remove, Id}}}
     || P <- Pids, is_process_alive(P)],
    ok.

%% What kind of gen process P is, and its callback module (none when its
%% start does not say): the module's behaviours first, then the loop it is
%% waiting in (an Elixir Agent's initial call is a fun, but it waits in
%% gen_server's loop). Supervisors are left alone: their state is their
%% children, which the tree already shows.
gen_kind(P) ->
    case erlang:process_info(P, [dictionary, current_function]) of
        [{dictionary, D}, {current_function, Current}] ->
            %% A behaviour's process was started as {Callback, init, 1}; a plain
            %% loop proc_lib-spawned from a module that also declares one
            %% ({M, loop, N}) is no GenServer: a hook request would sit in its
            %% mailbox forever.
            case microscope_agent_inspect:spawned_as(D, none) of
                {supervisor, _, _} -> none;
                {M, init, 1} ->
                    Bs = microscope_agent_inspect:behaviours(M),
                    Gen = [K || {B, K} <- [{gen_server, gen_server}, {'Elixir.GenServer', gen_server},
                                           {'Elixir.Agent', gen_server}, {gen_statem, gen_statem}],
                                lists:member(B, Bs)],
                    case {lists:member(supervisor, Bs), Gen, Current} of
                        {true, _, _} -> {none, none};
                        {false, [K | _], _} -> {K, M};
                        {false, [], {gen_server, loop, _}} -> {gen_server, none};
                        {false, [], {gen_statem, loop_receive, _}} -> {gen_statem, M};
                        _ -> {none, none}
                    end;
                _ ->
                    case Current of
                        {gen_server, loop, _} -> {gen_server, none};
                        {gen_statem, loop_receive, _} -> {gen_statem, none};
                        _ -> {none, none}
                    end
            end;
        _ -> {none, none}
    end.
%%%===================================================================
%%% A GEN_STATEM'S DATA AND CALLBACKS
%%%===================================================================

%% sys debug events carry a gen_statem's state name, never its data, and no
%% event is sent for a state enter call. So the callbacks its module exports
%% (arity 3: state functions; 4: handle_event/4) are call-traced with their
%% returns, for the hooked gen_statems alone: a guard on the caller's pid.
%% Each callback then costs two trace messages (its arguments, the data
%% among them, and its result); no other process pays more than the
%% breakpoint's check. Python joins them to the hook's reports (by time,
%% per process). The marker guard makes the pattern ours at a glance.
-define(STATEM_MARK, {is_atom, microscope_statem}).
%% gen_statems of one module watched at most per trace: the guard is an
%% `orelse' over their pids, evaluated at every call of the module.
-define(STATEM_PIDS, 32).
-define(NOT_CALLBACKS, [init, terminate, code_change, format_status, callback_mode,
                        module_info, '__info__']).

%% Watched: Module => [Pid], this trace's. Returns it with Statems added; a
%% module whose functions carry another tool's pattern (or another live
%% trace's of ours, before OTP 27) is left alone: its statems' transitions
%% keep their state names only.
watch_statems(_Backend, _Tracer, [], Watched) ->
    Watched;
watch_statems(Backend, Tracer, Statems, Watched) ->
    lists:foldl(fun({P, M}, W) -> watch_statem(Backend, Tracer, P, M, W) end, Watched, Statems).

watch_statem(Backend, Tracer, P, M, Watched) ->
    Pids = maps:get(M, Watched, []),
    MFAs = statem_callbacks(M),
    Free = is_map_key(M, Watched) orelse statem_patterns_free(Backend, MFAs),
    case Free andalso length(Pids) < ?STATEM_PIDS andalso call_flag(Backend, Tracer, P) of
        true ->
            Spec = statem_spec([P | Pids]),
            [case Backend of
                 {legacy, _} -> erlang:trace_pattern(MFA, Spec, [global]);
                 {session, S} -> trace:function(S, MFA, Spec, [global])
             end || MFA <- MFAs],
            Watched#{M => [P | Pids]};
        false ->
            Watched
    end.

statem_callbacks(M) ->
    try M:module_info(exports) of
        Exports -> [{M, F, A} || {F, A} <- Exports, A =:= 3 orelse A =:= 4,
                                 not lists:member(F, ?NOT_CALLBACKS)]
    catch _:_ -> []
    end.

statem_spec(Pids) ->
    Self = [{'==', {self}, {const, P}} || P <- Pids],
    Guard = case Self of [One] -> One; _ -> list_to_tuple(['orelse' | Self]) end,
    [{['_', '_', '_'], [?STATEM_MARK, Guard], [{return_trace}]},
     {['_', '_', '_', '_'], [?STATEM_MARK, Guard], [{return_trace}]}].

%% The statem's own call flag, with the trace's tracer (only if it is ours).
call_flag({session, S}, _Tracer, P) ->
    try trace:process(S, P, true, [call]) of 1 -> true; _ -> false
    catch error:badarg -> false
    end;
call_flag({legacy, Tracer}, Tracer, P) ->
    erlang:trace_info(P, tracer) =:= {tracer, Tracer}
        andalso (catch erlang:trace(P, true, [call, {tracer, Tracer}])) =:= 1.

%% In a session nothing is shared. Before OTP 27 a pattern is the node's:
%% free if there is none, or if it is one of ours that no live trace holds
%% (its statems are dead or traced by nobody: a trace killed before its
%% cleanup); another tool's is never overwritten.
statem_patterns_free({session, _}, _) -> true;
statem_patterns_free({legacy, _}, MFAs) ->
    MFAs =/= [] andalso lists:all(fun(MFA) ->
        case erlang:trace_info(MFA, all) of
            {all, false} -> true;
            {all, Info} ->
                case proplists:get_value(traced, Info, false) of
                    false -> true;
                    _ -> orphan_spec(proplists:get_value(match_spec, Info, false))
                end;
            _ -> false
        end end, MFAs).

orphan_spec([{_, [?STATEM_MARK, Guard], _} | _]) ->
    Pids = case Guard of
               {'==', {self}, {const, P}} -> [P];
               _ -> [P || {'==', {self}, {const, P}} <- tl(tuple_to_list(Guard))]
           end,
    lists:all(fun(P) ->
                      case erlang:trace_info(P, tracer) of
                          {tracer, []} -> true;
                          undefined -> true;   % dead
                          _ -> false
                      end
              end, Pids);
orphan_spec(_) -> false.

%% At the trace's end (before OTP 27; a session goes whole): our patterns go
%% from the functions that still carry them. The statems' call flag goes
%% with the trace's other flags (the controller adds it to them).
unwatch_statems({session, _}, _) -> ok;
unwatch_statems({legacy, _}, Watched) ->
    [catch erlang:trace_pattern(MFA, false, [global])
     || M <- maps:keys(Watched), MFA <- statem_callbacks(M),
        case erlang:trace_info(MFA, match_spec) of
            {match_spec, [{_, [?STATEM_MARK | _], _} | _]} -> true;
            _ -> false
        end],
    ok.

%%%===================================================================
%%% THE HOOK (inside the traced process)
%%%===================================================================

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
    F#hook{pending = {Msg, os:perf_counter()}, in = true};
hook_event(F, {continue, _} = Msg) ->
    F#hook{pending = {Msg, os:perf_counter()}};
hook_event(F, {out, Reply, _From, NewState}) ->
    hook_out(F, NewState, {reply, Reply});
hook_event(F, {noreply, NewState}) ->
    hook_out(F, NewState, noreply);
%% A gen_statem's event ends consumed or postponed; one with no `in' before
%% it was not taken from the mailbox (a postponed event retried after a state
%% change, an event its own action inserted). Its replies are {out, Reply, From}
%% (to its caller or any other). State enter calls have no debug event: the
%% call trace of the callback module (watch_statems/4) has them.
hook_event(F = #hook{kind = gen_statem, replies = Rs, budget = Budget}, {out, Reply, From}) ->
    F#hook{replies = [{From, bounded(Reply, Budget)} | Rs]};
hook_event(F = #hook{kind = gen_statem}, {consume, Event, _State, Next}) ->
    statem_out(F, Event, Next, consume);
hook_event(F = #hook{kind = gen_statem}, {postpone, Event, _State, Next}) ->
    statem_out(F, Event, Next, postpone);
hook_event(F, _Other) ->
    F.

statem_out(F = #hook{pending = Pending, replies = Rs, in = In}, Event, Next, How) ->
    Pending1 = case Pending of none -> {Event, os:perf_counter()}; _ -> Pending end,
    hook_out(F#hook{pending = Pending1}, Next, {statem, How, In, lists:reverse(Rs)}).

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
                   last_insert = Insert, replies = [], in = false}
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
%% calibrated). sys's debug path is in the calibration (overhead/0).
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
reply_capture({reply, R}, Budget) -> {reply, bounded(R, Budget)};
reply_capture(Statem = {statem, _, _, _}, _) -> Statem.   % its replies bounded as made

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
%%% THE TRACER'S SIDE
%%%===================================================================

%% A report taken from the table, as the message the tracer encodes.
report_message({{Ts, P, 0}, base, Base}) ->
    {microscope_base, P, Base, Ts};
report_message({{TsOut, P, N}, PerfIn, Msg, Capture, Reply, Kind, PerfTool}) ->
    {microscope_state, P, TsOut - perf_to_native(PerfIn), TsOut, Msg, Capture, Reply, Kind, N,
     perf_to_native(PerfTool)}.

perf_to_native(Perf) -> erlang:convert_time_unit(Perf, perf_counter, native).

%% The state a hook's report leads to, from the last one the tracer knows
%% of the process (Known: {N, State}, or none; rebuilt only when no report
%% in between is missing): {Before, After}.
rebuild(Known, N, Capture) ->
    Before = case Known of
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

