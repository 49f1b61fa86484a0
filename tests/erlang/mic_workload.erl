%% Workloads for tests and benchmarks, compiled with erlc and loaded diskless.
-module(mic_workload).
-behaviour(gen_server).

-export([start_counter/1, pingpong/1, flood/2, burst/2]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2]).

%% A counter GenServer registered as Name: casts, calls and infos all change it.
start_counter(Name) ->
    {ok, Pid} = gen_server:start({local, Name}, ?MODULE, 0, []),
    Pid.

init(N) -> {ok, #{count => N}}.

handle_call(get, _From, S) -> {reply, maps:get(count, S), S};
handle_call({add, X}, _From, S = #{count := C}) -> {reply, ok, S#{count := C + X}}.

handle_cast({add, X}, S = #{count := C}) -> {noreply, S#{count := C + X}}.

handle_info({add, X}, S = #{count := C}) -> {noreply, S#{count := C + X}};
handle_info(_, S) -> {noreply, S}.

%% Two processes bounce N messages; returns the elapsed microseconds.
pingpong(N) ->
    Self = self(),
    Pong = spawn(fun Loop() -> receive {ping, From, I} -> From ! {pong, I}, Loop(); stop -> ok end end),
    Ping = spawn(fun() ->
        T0 = erlang:monotonic_time(microsecond),
        [begin Pong ! {ping, self(), I}, receive {pong, I} -> ok end end || I <- lists:seq(1, N)],
        Pong ! stop,
        Self ! {done, erlang:monotonic_time(microsecond) - T0}
    end),
    receive {done, Us} -> _ = Ping, Us end.

%% Send N messages to Pid as fast as possible.
flood(Pid, N) ->
    [Pid ! {add, 1} || _ <- lists:seq(1, N)],
    ok.

%% K processes each flood a sink with N messages; returns elapsed microseconds.
burst(K, N) ->
    Self = self(),
    Sink = spawn(fun Loop() -> receive stop -> ok; _ -> Loop() end end),
    T0 = erlang:monotonic_time(microsecond),
    Ws = [spawn(fun() -> flood(Sink, N), Self ! {done, self()} end) || _ <- lists:seq(1, K)],
    [receive {done, W} -> ok end || W <- Ws],
    Sink ! stop,
    erlang:monotonic_time(microsecond) - T0.
