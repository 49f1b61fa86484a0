%% Idiom: a proc_lib "special process" that is not a gen_server but follows
%% the OTP rules: started with proc_lib:start_link + init_ack, answers
%% system messages with sys:handle_system_msg (so sys:get_state,
%% sys:replace_state, sys:suspend, code change and sys debug all work), and
%% runs each message through sys:handle_debug when debugging is on.
%% Mirrors: Ranch/Cowboy connection processes, gen_statem-less protocol
%% loops in libraries, hand-written supervisors' children.
%% Traffic: 2 clients sending requests and awaiting replies every 2 ms
%% (~1000 round trips/s); an ops loop doing sys:get_state every 20 ms and
%% sys:replace_state every 200 ms.
-module(idiom_proc_lib_special).

-export([start/0, stop/0, procs/0]).
-export([init/1, system_continue/3, system_terminate/4, system_code_change/4,
         system_get_state/1, system_replace_state/2]).

-define(SRV, idiom_proc_lib_special_counter).
-define(LOAD, idiom_proc_lib_special_load).

start() ->
    {ok, Pid} = proc_lib:start_link(?MODULE, init, [self()]),
    unlink(Pid),
    start_load([fun() -> client(0) end, fun() -> client(1) end, fun() -> ops(0) end]),
    ok.

stop() -> stop_load(), proc_lib:stop(?SRV).

procs() -> [P || N <- [?SRV, ?LOAD], P <- [whereis(N)], is_pid(P)].

init(Parent) ->
    register(?SRV, self()),
    Debug = sys:debug_options([]),
    proc_lib:init_ack(Parent, {ok, self()}),
    loop(Parent, Debug, #{count => 0, generation => 0}).

loop(Parent, Debug, State) ->
    receive
        {system, From, Request} ->
            sys:handle_system_msg(Request, From, Parent, ?MODULE, Debug, State);
        {'EXIT', Parent, Reason} ->
            exit(Reason);
        Msg ->
            Debug1 = case Debug of
                         [] -> Debug;
                         _ -> sys:handle_debug(Debug, fun print/3, ?SRV, {in, Msg})
                     end,
            loop(Parent, Debug1, handle(Msg, State))
    end.

handle({add, From, Ref, N}, S = #{count := C}) ->
    From ! {Ref, C + N},
    S#{count := C + N}.

print(Dev, Event, Name) -> io:format(Dev, "~p event = ~p~n", [Name, Event]).

system_continue(Parent, Debug, State) -> loop(Parent, Debug, State).
system_terminate(Reason, _Parent, _Debug, _State) -> exit(Reason).
system_code_change(State, _Module, _OldVsn, _Extra) -> {ok, State}.
system_get_state(State) -> {ok, State}.
system_replace_state(Fun, State) -> New = Fun(State), {ok, New, New}.

client(N) ->
    receive stop -> ok
    after 2 ->
        Ref = make_ref(),
        ?SRV ! {add, self(), Ref, 1},
        receive {Ref, _Total} -> client(N + 1) end
    end.

ops(N) ->
    receive stop -> ok
    after 20 ->
        #{count := _} = sys:get_state(?SRV),
        _ = N rem 10 =:= 0 andalso
            sys:replace_state(?SRV, fun(S = #{generation := G}) -> S#{generation := G + 1} end),
        ops(N + 1)
    end.

start_load(Loops) ->
    register(?LOAD, spawn(fun() -> [spawn_link(L) || L <- Loops],
                                   receive stop -> exit(shutdown) end end)).

stop_load() ->
    case whereis(?LOAD) of
        undefined -> ok;
        P -> M = monitor(process, P), P ! stop, receive {'DOWN', M, _, _, _} -> ok end
    end.
