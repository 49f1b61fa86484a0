%%% @doc The flight recorder: a trace that runs with no notebook attached,
%%% the one exception to "gone when the notebook goes", and the triggers
%%% that make it keep a copy of what led to a failure.
%%%
%%% ```
%%%   {ok, Ring, Status} = start(Opts)   % microscope_agent:start/2's options, and FLIGHT_DEFAULTS
%%%   [Status] = list()
%%%   {ok, Summary} = pull(Ring, To)     % the batches go to To, as a trace's would
%%%   ok = remove(Ring)
%%% '''
%%%
%%% Its owner is a ring process on the node instead of a Python mailbox: it
%%% keeps the newest batches within max_bytes and max_age_ms, freezes a copy
%%% when a trigger fires, and removes everything at its expiry (until_ms) or
%%% when any session asks. Each batch defines its own ids (the tracer's ring
%%% mode), so any batch can go. No registered name: list/0 finds rings by
%%% their initial call. The ring keeps the agent loaded after its session
%%% detaches (Python does not unload while list/0 has one); at its expiry it
%%% unloads the agent itself, when alone (microscope_agent:unload_when_alone/0).
%%%
%%% Memory: the batches held stay within max_bytes. A frozen copy is the
%%% newest batches worth half of it, taken a moment (post_ms) after its
%%% trigger; copies share their batches with the ring (binaries are
%%% reference-counted), so freezing copies no event. Over max_bytes, the
%%% oldest copy goes while the copies alone hold more than half, else the
%%% ring's oldest batch: the ring always has half the bytes to go on with.
-module(microscope_agent_flight).
-include("microscope_agent.hrl").

-export([start/1, list/0, pull/2, remove/1]).
%% the triggers, as the tracer asks them
-export([crashed/4, watch/4, watched/1, mailbox/4, monitored/3]).
%% @private spawned by start/1
-export([init/2]).

%%%===================================================================
%%% THE RING
%%%===================================================================

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

start(Opts) when is_map(Opts) ->
    Caller = self(),
    Ring = spawn(?MODULE, init, [Caller, Opts]),
    Ref = erlang:monitor(process, Ring),
    receive
        {Ring, started, Status} -> erlang:demonitor(Ref, [flush]), {ok, Ring, Status};
        {Ring, refused, Reason} -> erlang:demonitor(Ref, [flush]), {error, Reason};
        {'DOWN', Ref, process, Ring, Reason} -> {error, {agent_crashed, Reason}}
    after 60000 ->
        exit(Ring, kill),
        {error, start_timeout}
    end.

list() ->
    [Status || P <- erlang:processes(),
               erlang:process_info(P, initial_call) =:= {initial_call, {?MODULE, init, 2}},
               {ok, Status} <- [microscope_agent:request(
                                  P, fun(From, Ref) -> {status, From, Ref} end, 5000)]].

pull(Ring, To) when is_pid(Ring), is_pid(To) ->
    case microscope_agent:request(Ring, fun(From, Ref) -> {pull, From, Ref, To} end, 120000) of
        {ok, Summary} -> Summary;
        down -> {error, no_such_recorder};
        timeout -> {error, timeout}
    end.

remove(Ring) when is_pid(Ring) ->
    case microscope_agent:request(Ring, fun(From, Ref) -> {remove, From, Ref} end, 30000) of
        {ok, ok} -> ok;
        down -> {error, no_such_recorder};
        timeout -> {error, timeout}
    end.

init(Caller, Opts0) ->
    Opts = maps:merge(?FLIGHT_DEFAULTS, Opts0),
    Bad = [{bad_limit, K, V} || K <- maps:keys(?FLIGHT_DEFAULTS), V <- [maps:get(K, Opts)],
                                not (is_integer(V) andalso V > 0 andalso V =< ?MAX_TIMER_MS)],
    TraceOpts = (maps:without(maps:keys(?FLIGHT_DEFAULTS), Opts))#{
                  ring => true, max_events => 1 bsl 59, duration_ms => infinity},
    case Bad of
        [Why | _] ->
            Caller ! {self(), refused, Why};
        [] ->
            case microscope_agent_controller:start(self(), TraceOpts) of
                {ok, Ctl, Info} ->
                    erlang:send_after(maps:get(until_ms, Opts), self(), expire),
                    erlang:send_after(1000, self(), age),
                    R = #ring{ctl = Ctl, ctl_ref = erlang:monitor(process, Ctl), info = Info,
                              opts = Opts, started = erlang:monotonic_time(millisecond)},
                    Caller ! {self(), started, status(R)},
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
            From ! {Ref, status(R)},
            ring_loop(R);
        {pull, From, Ref, To} ->
            From ! {Ref, send_held(R, To)},
            ring_loop(R);
        {remove, From, Ref} ->
            stop_trace(R),
            From ! {Ref, ok};
        expire ->
            stop_trace(R),
            microscope_agent:unload_when_alone();
        _ ->
            ring_loop(R)
    end.

%% The trace's own cleanup (every flag, pattern and hook it set); then the
%% ring process ends, and its batches with it.
stop_trace(#ring{ctl = Ctl}) ->
    case is_process_alive(Ctl) of
        true -> _ = microscope_agent_controller:stop(Ctl);
        false -> ok
    end,
    ok.

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
send_held(R = #ring{ctl = Ctl}, To) ->
    Held = lists:ukeysort(1, lists:append([maps:get(batches, C) || C <- R#ring.frozen])
                             ++ queue:to_list(R#ring.batches)),
    case R#ring.details of
        none -> ok;
        Details -> To ! {microscope_details, Ctl, Details}
    end,
    {_, _, Seen, Dropped, Gaps} = lists:foldl(fun(B, Acc) -> pull_one(B, To, Acc) end,
                                              {0, none, 0, 0, []}, Held),
    {ok, #{info => R#ring.info, batches => length(Held), seen => Seen, dropped => Dropped,
           gaps => lists:reverse(Gaps), status => status(R),
           details => R#ring.details =/= none,
           frozen => [#{why => Why, at => At, from => lists:min([first_ts(B) || B <- Bs]),
                        to => lists:max([last_ts(B) || B <- Bs]),
                        events => lists:sum([element(4, B) || {_, _, _, B} <- Bs])}
                      || #{why := Why, at := At, batches := Bs} <- R#ring.frozen, Bs =/= []]}}.

pull_one({No, _, _, B} = Held, To, {N, Prev, Seen, Dropped, Gaps}) ->
    {microscope_batch, Tracer, _, Events, Headers, Payloads, Defs, _, _} = B,
    Counts = microscope_agent_events:dropped_counts(Headers),
    Kept = Events - length(Counts) - microscope_agent_events:granularity_rows(Headers),
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
    [First | Rest] = microscope_agent_events:header_times(Headers),
    lists:foldl(Pick, First, Rest).

status(R = #ring{ctl = Ctl, info = Info, opts = Opts}) ->
    Offset = erlang:time_offset(millisecond),
    Trace = case R#ring.state of
                recording ->
                    case microscope_agent_controller:status(Ctl) of
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
           ignored_triggers => R#ring.ignored, memory => held_memory(R),
           triggers => maps:get(triggers, Opts, #{}), granularity => maps:get(level, Opts, 0)}.

%% What the recorder's processes hold on the node: their memory, and the
%% binaries they refer to (each counted once).
held_memory(#ring{ctl = Ctl, info = Info}) ->
    Infos = [I || P <- [self(), Ctl, maps:get(tracer, Info)],
                  I <- [erlang:process_info(P, [memory, binary])], I =/= undefined],
    Binaries = maps:from_list([{Id, Size} || [_, {binary, Bs}] <- Infos, {Id, Size, _} <- Bs]),
    lists:sum([M || [{memory, M}, _] <- Infos]) + lists:sum(maps:values(Binaries)).

%%%===================================================================
%%% TRIGGERS
%%%===================================================================

%% The tracer asks, on the rare events that can fire one (an exit, a
%% register, a mailbox sample, a system monitor report), whether something
%% worth keeping happened: none, or why. It then tells the ring, which
%% freezes a copy a moment later (so the copy holds what followed too).
%% Triggers (a flight recorder's option): crash (any | [name binary]),
%% mailbox (a length), monitor ([long_gc | long_schedule | large_heap]).
%% Watch maps the pids of watched names to them; Over holds the pids whose
%% mailbox is past the length.
crashed(P, Reason, #{crash := Which}, Watch) when Reason =/= normal, Reason =/= shutdown ->
    Crashed = case Reason of
                  {shutdown, _} -> false;
                  _ -> Which =:= any orelse is_map_key(P, Watch)
              end,
    case Crashed of
        true -> {crash, maps:get(P, Watch, P), Reason};
        false -> none
    end;
crashed(_, _, _, _) ->
    none.

%% A watched name registered again (a restarted worker): its new pid is watched.
watch(P, Name, #{crash := Names}, Watch) when is_list(Names) ->
    case lists:member(atom_to_binary(Name, utf8), Names) of
        true -> Watch#{P => Name};
        false -> Watch
    end;
watch(_, _, _, Watch) ->
    Watch.

%% The pids of the watched names as the trace starts.
watched(#{crash := Names}) when is_list(Names) ->
    maps:from_list([{P, A} || N <- Names, {ok, A} <- [microscope_agent_scope:existing_atom(N)],
                              P <- [whereis(A)], is_pid(P)]);
watched(_) ->
    #{}.

%% Fires as a mailbox passes the length, once until it falls back under it:
%% {none | Why, Over}.
mailbox(P, Len, #{mailbox := Limit}, Over) ->
    case {Len >= Limit, is_map_key(P, Over)} of
        {true, false} -> {{mailbox, P, Len}, Over#{P => true}};
        {false, true} -> {none, maps:remove(P, Over)};
        _ -> {none, Over}
    end;
mailbox(_, _, _, Over) ->
    {none, Over}.

monitored(What, P, #{monitor := Kinds}) ->
    case lists:member(What, Kinds) of
        true -> {What, P};
        false -> none
    end;
monitored(_, _, _) ->
    none.
