%% Bug: a call cycle between two gen_servers. The accounts server records
%% every transfer in the ledger with a gen_server:call from its handle_call;
%% the ledger, for a transfer over its review limit, asks the accounts server
%% for the payer's balance with a gen_server:call from ITS handle_call. That
%% request closes the cycle: accounts waits for the ledger, the ledger waits
%% for accounts, neither can serve the other, and both sit blocked until the
%% 1 s call timeouts fire; accounts crashes with a timeout, the ledger's call
%% then fails too, and the client's transfer fails. The supervisor restarts
%% both and every transfer that arrived meanwhile has failed.
%% Mirrors: two services that grew to call each other (accounts <-> ledger,
%% session <-> presence, cache <-> loader) with synchronous calls, e.g. an
%% audit or limit check added later to the callee.
%% Traffic: a teller client makes a small transfer every 20 ms (~50/s), each
%% a call to accounts -> call to the ledger.
%% Trigger: one large transfer (over the ledger's review limit).
%% Evidence: both servers blocked in gen:do_call waiting for each other for
%% ~1 s, then a crash report of the accounts server with
%% {timeout, {gen_server, call, [bug_call_cycle_ledger, ...]}}, the ledger's
%% crash with the accounts server's exit, and the teller's calls failing.
%% Root cause: accounts calls the ledger inside handle_call while the ledger,
%% for large transfers, calls accounts inside its handle_call: a cycle of
%% synchronous calls (a deadlock broken only by the timeouts).
-module(bug_call_cycle).
-behaviour(gen_server).

-export([start/0, stop/0, procs/0, trigger/0]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2, start_server/1]).

-define(SUP, bug_call_cycle_sup).
-define(ACCOUNTS, bug_call_cycle_accounts).
-define(LEDGER, bug_call_cycle_ledger).
-define(TELLER, bug_call_cycle_teller).
-define(REVIEW_LIMIT, 10000).

start() ->
    {ok, Sup} = supervisor:start_link({local, ?SUP}, ?MODULE, sup),
    unlink(Sup),
    register(?TELLER, proc_lib:spawn(fun() -> teller(0, #{ok => 0, failed => 0}) end)),
    ok.

trigger() ->
    proc_lib:spawn(fun() -> catch transfer(alice, bob, 25000) end),
    ok.

stop() ->
    case whereis(?TELLER) of
        undefined -> ok;
        T -> M = monitor(process, T), T ! stop, receive {'DOWN', M, _, _, _} -> ok end
    end,
    case whereis(?SUP) of undefined -> ok; _ -> catch gen_server:stop(?SUP) end,
    ok.

procs() -> [P || N <- [?SUP, ?ACCOUNTS, ?LEDGER, ?TELLER], P <- [whereis(N)], is_pid(P)].

transfer(From, To, Amount) -> gen_server:call(?ACCOUNTS, {transfer, From, To, Amount}, 2000).

teller(N, Stats) ->
    receive stop -> ok
    after 20 ->
        Result = try transfer(lists:nth(N rem 3 + 1, [alice, bob, carol]), dave, 5)
                 catch exit:Reason -> {error, Reason}
                 end,
        Key = case Result of {ok, _} -> ok; _ -> failed end,
        teller(N + 1, maps:update_with(Key, fun(C) -> C + 1 end, Stats))
    end.

start_server(Name) -> gen_server:start_link({local, Name}, ?MODULE, Name, []).

init(sup) ->
    {ok, {#{strategy => one_for_one, intensity => 10, period => 10},
          [#{id => N, start => {?MODULE, start_server, [N]}} || N <- [?ACCOUNTS, ?LEDGER]]}};
init(?ACCOUNTS) ->
    {ok, #{balances => #{alice => 1000000, bob => 1000000, carol => 1000000, dave => 0}}};
init(?LEDGER) ->
    {ok, #{entries => [], seq => 0}}.

%% accounts
handle_call({transfer, From, To, Amount}, _From, S = #{balances := B}) ->
    {ok, EntryId} = gen_server:call(?LEDGER, {record, From, To, Amount}, 1000),
    B1 = maps:update_with(From, fun(V) -> V - Amount end, B),
    B2 = maps:update_with(To, fun(V) -> V + Amount end, B1),
    {reply, {ok, EntryId}, S#{balances := B2}};
handle_call({balance, Who}, _From, S = #{balances := B}) ->
    {reply, maps:get(Who, B, 0), S};
%% ledger
handle_call({record, From, To, Amount}, _From, S = #{entries := E, seq := Seq}) ->
    case Amount > ?REVIEW_LIMIT of
        true ->
            %% large transfers: check the payer can cover it
            Balance = gen_server:call(?ACCOUNTS, {balance, From}, 1000),
            true = Balance >= Amount;
        false ->
            ok
    end,
    {reply, {ok, Seq + 1}, S#{entries := lists:sublist([{Seq + 1, From, To, Amount} | E], 500),
                              seq := Seq + 1}}.

handle_cast(_Msg, S) -> {noreply, S}.

handle_info(_Msg, S) -> {noreply, S}.
