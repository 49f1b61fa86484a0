%% Bug: process leak. A gateway answers each client request by spawning a
%% helper that forwards the request to the upstream service and waits for its
%% answer, then relays it. The helper's receive has no timeout and watches
%% nothing; the upstream only answers requests it could serve (on its error
%% path it logs and moves on, like a handler that forgot to reply). Every
%% failed request leaves a helper blocked in receive forever.
%% Mirrors: "spawn a process per request and wait for the upstream" code
%% (hand-rolled async HTTP/RPC fan-out, Task.start without a timeout) where
%% the reply is only sent on the success path.
%% Traffic: ~200 requests/s, about 1 in 4 for an unknown account, which the
%% upstream drops: ~50 helpers leak per second, steadily.
%% Evidence: the node's process count grows ~50/s; the leaked processes all
%% sit in bug_process_leak:await_upstream/4 with empty mailboxes, spawned by
%% bug_process_leak_gateway; the gateway's replies are a quarter short.
%% Root cause: the helper waits for a reply that is only sent on success, with
%% no timeout or monitor, so each failed request leaks a process.
-module(bug_process_leak).
-behaviour(gen_server).

-export([start/0, stop/0, procs/0]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2, await_upstream/4]).

-define(GATEWAY, bug_process_leak_gateway).
-define(UPSTREAM, bug_process_leak_upstream).
-define(LOAD, bug_process_leak_load).

start() ->
    {ok, _} = gen_server:start({local, ?UPSTREAM}, ?MODULE, upstream, []),
    {ok, _} = gen_server:start({local, ?GATEWAY}, ?MODULE, gateway, []),
    register(?LOAD, spawn(fun() -> load(0) end)),
    ok.

stop() ->
    case whereis(?LOAD) of
        undefined -> ok;
        L -> M = monitor(process, L), L ! stop, receive {'DOWN', M, _, _, _} -> ok end
    end,
    [catch gen_server:stop(N) || N <- [?GATEWAY, ?UPSTREAM]],
    %% the helpers nobody kept track of
    [exit(P, kill) || P <- erlang:processes(),
                      {initial_call, {?MODULE, await_upstream, 4}} <- [process_info(P, initial_call)]],
    ok.

procs() -> [P || N <- [?GATEWAY, ?UPSTREAM, ?LOAD], P <- [whereis(N)], is_pid(P)].

%% clients: one request every 5 ms; account ids 0..99, ids >= 75 are unknown
load(N) ->
    receive
        stop -> ok;
        {reply, _ReqId, _Balance} -> load(N)
    after 5 ->
        gen_server:cast(?GATEWAY, {balance, self(), N, N * 37 rem 100}),
        load(N + 1)
    end.

init(upstream) -> {ok, #{accounts => maps:from_list([{A, A * 10} || A <- lists:seq(0, 74)]),
                         served => 0, unknown => 0}};
init(gateway) -> {ok, #{requests => 0}}.

handle_call(_Req, _From, S) -> {reply, ok, S}.

%% gateway: one helper per request, so a slow upstream never blocks the gateway
handle_cast({balance, Client, ReqId, Account}, S = #{requests := R}) ->
    spawn(?MODULE, await_upstream, [Client, ReqId, Account, whereis(?UPSTREAM)]),
    {noreply, S#{requests := R + 1}};
%% upstream: answers the accounts it knows; the error path only counts
handle_cast({lookup, From, Ref, Account}, S = #{accounts := A, served := Sv, unknown := U}) ->
    case maps:find(Account, A) of
        {ok, Balance} -> From ! {Ref, {ok, Balance}}, {noreply, S#{served := Sv + 1}};
        error -> {noreply, S#{unknown := U + 1}}
    end.

handle_info(_Msg, S) -> {noreply, S}.

await_upstream(Client, ReqId, Account, Upstream) ->
    Ref = make_ref(),
    gen_server:cast(Upstream, {lookup, self(), Ref, Account}),
    receive
        {Ref, {ok, Balance}} -> Client ! {reply, ReqId, Balance}
    end.
