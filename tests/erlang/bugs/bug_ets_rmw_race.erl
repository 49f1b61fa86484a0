%% Bug: a read-modify-write race on a shared ETS table. Account balances live
%% in a public ETS table so that request processes can update them without a
%% round trip through the owner. A deposit reads the balance with ets:lookup
%% checks the new balance against the account's limit (a call to the owner)
%% and writes back balance + amount with ets:insert. When several processes
%% deposit into the same account at once, two of them read the same balance
%% and the later insert overwrites the earlier one: deposits are lost. The
%% owner's reconcile job, which counts every deposit made, finds the balance
%% short by hundreds or thousands.
%% Mirrors: counters, rate limits, balances or inventories kept in public ETS
%% and updated with lookup + insert (or :ets.lookup |> update |> :ets.insert)
%% instead of ets:update_counter/ets:update_element or a single writer.
%% Traffic: a payroll process deposits 1 every 10 ms (one writer: no race);
%% the owner reconciles every 200 ms.
%% Trigger: a batch of card settlements: four teller processes each deposit
%% 1 into the same account 1,000 times, concurrently.
%% Evidence: interleaved ets:lookup/ets:insert calls on the same key from
%% the tellers; the reconcile error "balance of acct-7 is N, but M deposits
%% were made" with N < M; the table's balance lower than the sum of the
%% tellers' deposit counts.
%% Root cause: deposits update the shared balance with a separate ets:lookup
%% and ets:insert (not atomic), so concurrent deposits overwrite each other
%% and updates are lost.
-module(bug_ets_rmw_race).
-behaviour(gen_server).

-export([start/0, stop/0, procs/0, trigger/0]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2]).

-define(ACCOUNTS, bug_ets_rmw_race_accounts).   % the owner, and its table
-define(PAYROLL, bug_ets_rmw_race_payroll).
-define(ACCT, <<"acct-7">>).

start() ->
    {ok, _} = gen_server:start({local, ?ACCOUNTS}, ?MODULE, [], []),
    register(?PAYROLL, proc_lib:spawn(fun() -> payroll(0) end)),
    ok.

trigger() ->
    [proc_lib:spawn(fun() -> teller(T, 1000) end) || T <- [1, 2, 3, 4]],
    ok.

stop() ->
    case whereis(?PAYROLL) of undefined -> ok; P -> exit(P, kill) end,
    [catch gen_server:stop(?ACCOUNTS) || whereis(?ACCOUNTS) =/= undefined],
    ok.

procs() -> [P || N <- [?ACCOUNTS, ?PAYROLL], P <- [whereis(N)], is_pid(P)].

%% the deposit, run in the caller
deposit(Acct, Amount) ->
    [{Acct, Balance}] = ets:lookup(?ACCOUNTS, Acct),
    New = Balance + Amount,
    ok = gen_server:call(?ACCOUNTS, {check_limit, Acct, New}),
    ets:insert(?ACCOUNTS, {Acct, New}),
    ok.

payroll(N) ->
    receive after 10 -> ok end,
    ok = deposit(?ACCT, 1),
    gen_server:cast(?ACCOUNTS, {deposited, 1}),
    payroll(N + 1).

teller(_T, N) ->
    [ok = deposit(?ACCT, 1) || _ <- lists:seq(1, N)],
    gen_server:cast(?ACCOUNTS, {deposited, N}).

init([]) ->
    ets:new(?ACCOUNTS, [named_table, public, set]),
    ets:insert(?ACCOUNTS, {?ACCT, 0}),
    erlang:send_after(200, self(), reconcile),
    {ok, #{deposited => 0, short => 0}}.

handle_call({check_limit, _Acct, New}, _From, S) ->
    {reply, case New =< 10000000 of true -> ok; false -> {error, over_limit} end, S};
handle_call(totals, _From, S = #{deposited := D}) ->
    [{_, Balance}] = ets:lookup(?ACCOUNTS, ?ACCT),
    {reply, {Balance, D}, S}.

handle_cast({deposited, N}, S = #{deposited := D}) ->
    {noreply, S#{deposited := D + N}}.

handle_info(reconcile, S = #{deposited := D, short := Short}) ->
    erlang:send_after(200, self(), reconcile),
    [{_, Balance}] = ets:lookup(?ACCOUNTS, ?ACCT),
    case D - Balance of
        Short -> ok;
        Missing when Missing > 1 ->
            logger:error("reconcile: balance of ~s is ~b, but ~b deposits were made (~b lost)",
                         [?ACCT, Balance, D, Missing]);
        _ -> ok
    end,
    {noreply, S#{short := D - Balance}}.
