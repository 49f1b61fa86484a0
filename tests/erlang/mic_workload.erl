%% Workloads for tests and benchmarks, compiled with erlc and loaded diskless.
-module(mic_workload).
-behaviour(gen_server).

-export([start_counter/1, pingpong/1, flood/2, burst/2]).
-export([driver/1, gencall_driver/1, service_driver/1, null_tracer/0, null_count/1,
         trace_with/2, trace_with/3, watcher/0, watch/2]).
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
        ping_loop(Pong, 1, N),  % a loop, not lists:seq: the workload itself stays flat
        Pong ! stop,
        Self ! {done, erlang:monotonic_time(microsecond) - T0}
    end),
    receive {done, Us} -> _ = Ping, Us end.

ping_loop(_Pong, I, N) when I > N -> ok;
ping_loop(Pong, I, N) ->
    Pong ! {ping, self(), I},
    receive {pong, I} -> ok end,
    ping_loop(Pong, I + 1, N).

%% A process that links, unlinks, monitors, demonitors and makes gen calls
%% when told to; watch/2 asks it and waits, so it can be driven over rpc.
watcher() -> spawn(fun() -> watch_loop(#{}) end).

watch(W, Request) ->
    W ! {Request, self()},
    receive {W, Reply} -> Reply after 5000 -> timeout end.

watch_loop(Refs) ->
    receive
        {{link, P}, From} -> link(P), From ! {self(), ok}, watch_loop(Refs);
        {{unlink, P}, From} -> unlink(P), From ! {self(), ok}, watch_loop(Refs);
        {{monitor, Target, Key}, From} ->
            Ref = erlang:monitor(process, Target),
            From ! {self(), ok},
            watch_loop(Refs#{Key => Ref});
        {{demonitor, Key}, From} ->
            erlang:demonitor(maps:get(Key, Refs)),
            From ! {self(), ok},
            watch_loop(maps:remove(Key, Refs));
        {{demonitor_flush, Key}, From} ->   % as Elixir's Process.demonitor does: demonitor/2
            erlang:demonitor(maps:get(Key, Refs), [flush]),
            From ! {self(), ok},
            watch_loop(maps:remove(Key, Refs));
        {{call, Name, Req}, From} -> From ! {self(), gen_server:call(Name, Req)}, watch_loop(Refs);
        _ -> watch_loop(Refs)
    end.

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

%% A process that runs pingpong(N) when told {go, ReplyTo}, and reports
%% {pingpong_done, Microseconds}. Trace it (with set_on_spawn) to trace the workload.
driver(N) ->
    spawn(fun() ->
        receive {go, ReplyTo} -> ReplyTo ! {pingpong_done, pingpong(N)} end
    end).

%% The same for N gen_server calls to a counter it starts: each call is a
%% request and a reply (4 trace events) plus the call's own monitor.
gencall_driver(N) ->
    spawn(fun() ->
        receive {go, ReplyTo} ->
            {ok, C} = gen_server:start(?MODULE, 0, []),
            T0 = erlang:monotonic_time(microsecond),
            call_loop(C, N),
            Us = erlang:monotonic_time(microsecond) - T0,
            gen_server:stop(C),
            ReplyTo ! {gencall_done, Us}
        end
    end).

%% The shape of a service, N rounds against a GenServer the driver starts:
%% each round a call; every second one a cast; every eighth a worker spawned
%% and monitored, whose answer is awaited, then its 'DOWN' (a fourth of
%% them) or a demonitor with flush, as Task.await does (the rest).
service_driver(N) ->
    spawn(fun() ->
        receive {go, ReplyTo} ->
            {ok, C} = gen_server:start(?MODULE, 0, []),
            T0 = erlang:monotonic_time(microsecond),
            service_loop(C, N),
            Us = erlang:monotonic_time(microsecond) - T0,
            gen_server:stop(C),
            ReplyTo ! {service_done, Us}
        end
    end).

service_loop(_C, 0) -> ok;
service_loop(C, N) ->
    ok = gen_server:call(C, {add, 1}),
    N rem 2 =:= 0 andalso gen_server:cast(C, {add, 1}),
    N rem 8 =:= 0 andalso begin
        Self = self(),
        W = spawn(fun() -> Self ! {worked, self()} end),
        Ref = erlang:monitor(process, W),
        receive {worked, W} -> ok end,
        case N rem 32 of
            0 -> receive {'DOWN', Ref, process, W, _} -> ok end;
            _ -> erlang:demonitor(Ref, [flush])
        end
    end,
    service_loop(C, N - 1).

call_loop(_C, 0) -> ok;
call_loop(C, N) -> ok = gen_server:call(C, {add, 1}), call_loop(C, N - 1).

%% The physical limit: a tracer that only counts what the BEAM hands it.
null_tracer() ->
    spawn_opt(fun() -> null_loop(0) end, [{message_queue_data, off_heap}]).

null_loop(N) ->
    receive
        {count, From} -> From ! {null_count, N}, null_loop(N);
        _ -> null_loop(N + 1)
    end.

null_count(T) ->
    T ! {count, self()},
    receive {null_count, N} -> N after 60000 -> timeout end.

trace_with(Pid, Tracer) ->
    trace_with(Pid, Tracer, []).

%% Extra: more flags (procs, for a workload whose spawns and exits are events).
trace_with(Pid, Tracer, Extra) ->
    erlang:trace(Pid, true, [send, 'receive', set_on_spawn, monotonic_timestamp, {tracer, Tracer}
                             | Extra]).
