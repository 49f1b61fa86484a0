%% Idiom: a process per connection. A listener owns a gen_tcp listen socket;
%% 2 acceptor processes block in gen_tcp:accept and, for each connection,
%% spawn_link a handler, hand it the socket (controlling_process) and go
%% back to accepting. A handler reads one request ({active, once}), answers,
%% and ends normal when the client closes. Acceptors do not trap exits: a
%% handler's normal exit does not touch them.
%% Mirrors: Ranch/Cowboy/Thousand Island acceptor pools, hand-written TCP
%% servers (gen_tcp tutorials, in-house protocols).
%% Traffic: a short-lived client process every 5 ms (~200 connections/s):
%% connect, send a line, read the answer, close, exit normal.
-module(idiom_acceptor).

-export([start/0, stop/0, procs/0]).
-export([listener/1, acceptor/1, handler/1, clients/1]).

-define(LISTENER, idiom_acceptor_listener).
-define(CLIENTS, idiom_acceptor_clients).

start() ->
    Self = self(),
    register(?LISTENER, proc_lib:spawn(?MODULE, listener, [Self])),
    receive {?LISTENER, Port} -> ok end,
    register(?CLIENTS, proc_lib:spawn(?MODULE, clients, [Port])),
    ok.

stop() ->
    [begin M = monitor(process, N), N ! stop, receive {'DOWN', M, _, _, _} -> ok end end
     || N <- [?CLIENTS, ?LISTENER]],
    ok.

procs() ->
    Acceptors = [P || N <- [idiom_acceptor_acceptor1, idiom_acceptor_acceptor2],
                      P <- [whereis(N)], is_pid(P)],
    [P || N <- [?LISTENER, ?CLIENTS], P <- [whereis(N)], is_pid(P)] ++ Acceptors.

listener(Starter) ->
    {ok, L} = gen_tcp:listen(0, [binary, {packet, line}, {active, false}, {reuseaddr, true},
                                 {ip, {127, 0, 0, 1}}, {backlog, 128}]),
    {ok, Port} = inet:port(L),
    [register(list_to_atom("idiom_acceptor_acceptor" ++ integer_to_list(K)),
              proc_lib:spawn_link(?MODULE, acceptor, [L])) || K <- [1, 2]],
    Starter ! {?LISTENER, Port},
    receive stop -> gen_tcp:close(L) end.

acceptor(L) ->
    case gen_tcp:accept(L) of
        {ok, Sock} ->
            H = spawn_link(?MODULE, handler, [Sock]),
            ok = gen_tcp:controlling_process(Sock, H),
            H ! {go, Sock},
            acceptor(L);
        {error, closed} -> ok
    end.

handler(Sock) ->
    receive {go, Sock} -> ok end,
    ok = inet:setopts(Sock, [{active, once}]),
    receive
        {tcp, Sock, Line} ->
            ok = gen_tcp:send(Sock, [<<"OK ">>, Line]),
            receive
                {tcp_closed, Sock} -> ok
            after 5000 -> gen_tcp:close(Sock)
            end;
        {tcp_closed, Sock} -> ok
    end.

clients(Port) ->
    receive stop -> ok
    after 5 ->
        spawn(fun() -> client(Port) end),
        clients(Port)
    end.

client(Port) ->
    {ok, S} = gen_tcp:connect({127, 0, 0, 1}, Port, [binary, {packet, line}, {active, false}]),
    ok = gen_tcp:send(S, <<"GET /health\n">>),
    {ok, <<"OK GET /health\n">>} = gen_tcp:recv(S, 0, 5000),
    ok = gen_tcp:close(S).
