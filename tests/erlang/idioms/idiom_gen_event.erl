%% Idiom: a gen_event manager with several handlers: a counter, a buffering
%% handler that flushes to a writer every 20 events, and an audit handler
%% added with add_sup_handler by a watcher process (which gets
%% gen_event_EXIT if it is removed). Events come by notify and sync_notify;
%% an ops loop queries the counter with gen_event:call and rotates the
%% buffer handler with swap_handler every 200 ms (like log rotation).
%% Mirrors: alarm_handler / error_logger-era event managers, Elixir's
%% :gen_event-based backends, an app's in-house event bus.
%% Traffic: ~1000 notifies/s, a sync_notify and a call every 10 ms.
-module(idiom_gen_event).
-behaviour(gen_server).

-export([start/0, stop/0, procs/0]).
-export([init/1, handle_event/2, handle_call/2, handle_info/2, terminate/2]).
-export([handle_call/3, handle_cast/2]).

-define(MGR, idiom_gen_event_manager).
-define(WRITER, idiom_gen_event_writer).
-define(WATCHER, idiom_gen_event_watcher).
-define(LOAD, idiom_gen_event_load).

start() ->
    {ok, _} = gen_server:start({local, ?WRITER}, ?MODULE, writer, []),
    {ok, _} = gen_event:start({local, ?MGR}),
    ok = gen_event:add_handler(?MGR, {?MODULE, counter}, counter),
    ok = gen_event:add_handler(?MGR, {?MODULE, buffer}, {buffer, 0}),
    {ok, _} = gen_server:start({local, ?WATCHER}, ?MODULE, watcher, []),
    register(?LOAD, spawn(fun() -> load(0) end)),
    ok.

stop() ->
    M = monitor(process, ?LOAD), ?LOAD ! stop,
    receive {'DOWN', M, _, _, _} -> ok end,
    gen_server:stop(?WATCHER), gen_event:stop(?MGR), gen_server:stop(?WRITER).

procs() -> [P || N <- [?MGR, ?WRITER, ?WATCHER, ?LOAD], P <- [whereis(N)], is_pid(P)].

load(N) ->
    receive stop -> ok
    after 1 ->
        gen_event:notify(?MGR, {request, N rem 5, N}),
        _ = N rem 10 =:= 0 andalso gen_event:sync_notify(?MGR, {deploy, N}),
        _ = N rem 10 =:= 5 andalso gen_event:call(?MGR, {?MODULE, counter}, count),
        _ = N rem 200 =:= 0 andalso
            gen_event:swap_handler(?MGR, {{?MODULE, buffer}, rotate}, {{?MODULE, buffer}, {buffer, N}}),
        load(N + 1)
    end.

%% gen_server: the writer and the watcher
init(writer) -> {ok, #{written => 0}};
init(watcher) ->
    ok = gen_event:add_sup_handler(?MGR, {?MODULE, audit}, audit),
    {ok, #{removed => 0}};
%% gen_event handlers
init(counter) -> {ok, #{}};
init(audit) -> {ok, 0};
init({{buffer, _Gen}, _Old}) -> {ok, {[], 0}};
init({buffer, _Gen}) -> {ok, {[], 0}}.

handle_event({request, Route, _N}, Counts) when is_map(Counts) ->
    {ok, maps:update_with(Route, fun(C) -> C + 1 end, 1, Counts)};
handle_event(Event, {Buf, 19}) ->
    gen_server:cast(?WRITER, {write, lists:reverse([Event | Buf])}),
    {ok, {[], 0}};
handle_event(Event, {Buf, N}) -> {ok, {[Event | Buf], N + 1}};
handle_event({deploy, _}, Audit) when is_integer(Audit) -> {ok, Audit + 1};
handle_event(_Event, State) -> {ok, State}.

handle_call(count, Counts) -> {ok, maps:size(Counts), Counts}.
terminate(rotate, {Buf, _}) -> gen_server:cast(?WRITER, {write, lists:reverse(Buf)}), rotated;
terminate(_Reason, _State) -> ok.

handle_call(_Req, _From, S) -> {reply, ok, S}.
handle_cast({write, Events}, S = #{written := W}) -> {noreply, S#{written := W + length(Events)}}.

%% the watcher hears when its supervised handler goes (the manager stops)
handle_info({gen_event_EXIT, {?MODULE, audit}, _Reason}, S = #{removed := R}) ->
    {noreply, S#{removed := R + 1}};
handle_info(_Msg, HandlerState) -> {ok, HandlerState}.   % the gen_event handlers
