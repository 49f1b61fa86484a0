%% Idiom: a gen_server call made inside another server's callback.
%% Mirrors: a layered app where a context server (say Accounts) answers a
%% request by calling a store/cache server from its own handle_call, the
%% way most Phoenix contexts sit on top of a cache or a Repo wrapper.
%% Traffic: 3 clients, one profile request each every 5 ms (~600 calls/s,
%% each one nested call deep).
-module(idiom_nested_call).
-behaviour(gen_server).

-export([start/0, stop/0, procs/0]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2]).

-define(FRONT, idiom_nested_call_accounts).
-define(STORE, idiom_nested_call_store).
-define(LOAD, idiom_nested_call_load).

start() ->
    {ok, _} = gen_server:start({local, ?STORE}, ?MODULE, store, []),
    {ok, _} = gen_server:start({local, ?FRONT}, ?MODULE, accounts, []),
    start_load([fun() -> client(N, 0) end || N <- [1, 2, 3]]),
    ok.

stop() ->
    stop_load(),
    [gen_server:stop(N) || N <- [?FRONT, ?STORE]],
    ok.

procs() -> [P || N <- [?FRONT, ?STORE], P <- [whereis(N)], is_pid(P)].

client(Id, N) ->
    receive stop -> ok
    after 5 ->
        {ok, #{id := _}} = gen_server:call(?FRONT, {profile, (Id * 31 + N) rem 100}),
        client(Id, N + 1)
    end.

init(store) ->
    {ok, maps:from_list([{K, #{id => K, name => integer_to_binary(K)}} || K <- lists:seq(0, 99)])};
init(accounts) ->
    {ok, #{served => 0}}.

handle_call({profile, Id}, _From, S = #{served := N}) ->
    %% the nested call: this server waits on the store inside its callback
    User = gen_server:call(?STORE, {get, Id}),
    {reply, {ok, User#{visits => N}}, S#{served := N + 1}};
handle_call({get, Id}, _From, Users) ->
    {reply, maps:get(Id, Users), Users}.

handle_cast(_Msg, S) -> {noreply, S}.
handle_info(_Msg, S) -> {noreply, S}.

%% traffic: client loops linked to one load process; stop/0 ends them all
start_load(Loops) ->
    register(?LOAD, spawn(fun() -> [spawn_link(L) || L <- Loops],
                                   receive stop -> exit(shutdown) end end)).

stop_load() ->
    case whereis(?LOAD) of
        undefined -> ok;
        P -> M = monitor(process, P), P ! stop, receive {'DOWN', M, _, _, _} -> ok end
    end.
