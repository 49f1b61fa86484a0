%% Idiom: a gen_server that owns a port to an external program and answers
%% its callers from the program's replies: the call is stored ({noreply,
%% S}) and answered with gen_server:reply when the port's data comes back,
%% first in first out.
%% Mirrors: wrappers around external processes (an image converter, a
%% Python/Node worker, erlexec-like drivers) speaking {packet, 4} frames.
%% Here the program is cat, which echoes every frame.
%% Traffic: 2 clients, one request every 2 ms each (~1000 round trips/s).
-module(idiom_port_echo).
-behaviour(gen_server).

-export([start/0, stop/0, procs/0]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2, terminate/2]).

-define(SRV, idiom_port_echo_converter).
-define(LOAD, idiom_port_echo_load).

start() ->
    {ok, _} = gen_server:start({local, ?SRV}, ?MODULE, [], []),
    start_load([fun() -> client(C, 0) end || C <- [1, 2]]),
    ok.

stop() -> stop_load(), gen_server:stop(?SRV).

procs() -> [P || N <- [?SRV, ?LOAD], P <- [whereis(N)], is_pid(P)].

client(C, N) ->
    receive stop -> ok
    after 2 ->
        Payload = term_to_binary({C, N, lists:seq(1, N rem 20)}),
        Payload = gen_server:call(?SRV, {convert, Payload}),
        client(C, N + 1)
    end.

init([]) ->
    process_flag(trap_exit, true),
    Cat = os:find_executable("cat"),
    Port = open_port({spawn_executable, Cat}, [binary, {packet, 4}, exit_status, use_stdio]),
    {ok, #{port => Port, waiting => queue:new(), done => 0}}.

handle_call({convert, Bin}, From, S = #{port := Port, waiting := W}) ->
    true = port_command(Port, Bin),
    {noreply, S#{waiting := queue:in(From, W)}}.

handle_cast(_Msg, S) -> {noreply, S}.

handle_info({Port, {data, Bin}}, S = #{port := Port, waiting := W, done := D}) ->
    {{value, From}, W1} = queue:out(W),
    gen_server:reply(From, Bin),
    {noreply, S#{waiting := W1, done := D + 1}};
handle_info({Port, {exit_status, Status}}, S = #{port := Port}) ->
    {stop, {converter_exited, Status}, S}.

terminate(_Reason, #{port := Port}) ->
    catch port_close(Port),
    ok.

start_load(Loops) ->
    register(?LOAD, spawn(fun() -> [spawn_link(L) || L <- Loops],
                                   receive stop -> exit(shutdown) end end)).

stop_load() ->
    case whereis(?LOAD) of
        undefined -> ok;
        P -> M = monitor(process, P), P ! stop, receive {'DOWN', M, _, _, _} -> ok end
    end.
