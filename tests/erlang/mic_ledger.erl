%% A supervised ledger whose settlement is slow and then crashes: the callers
%% that asked for the balance meanwhile time out, the supervisor restarts the
%% ledger, and the restart loses what it held. For the crash -> restart ->
%% consequences chain of s.explain().
%%
%%   start()         mic_ledger_sup with one permanent child, mic_ledger
%%   deposit(N)      a call: the balance grows by N
%%   settle(Ms)      a cast: Ms of work, then a badmatch (the planted bug)
%%   callers(N, Ms)  N callers, each to call balance with an Ms timeout when
%%                   told `go' (spawned first, so a trace can start before)
%%   go(Pids)        tell them
-module(mic_ledger).
-behaviour(gen_server).

-export([start/0, deposit/1, settle/1, callers/2, go/1]).
-export([init/1, handle_call/3, handle_cast/2]).

start() ->
    {ok, Sup} = supervisor:start_link({local, mic_ledger_sup}, ?MODULE, sup),
    unlink(Sup),
    Sup.

deposit(N) -> gen_server:call(mic_ledger, {deposit, N}).

settle(Ms) -> gen_server:cast(mic_ledger, {settle, Ms}).

callers(N, Ms) ->
    [spawn(fun() -> receive go -> gen_server:call(mic_ledger, balance, Ms) end end)
     || _ <- lists:seq(1, N)].

go(Pids) -> [P ! go || P <- Pids], ok.

init(sup) ->
    Child = #{id => ledger, start => {gen_server, start_link, [{local, mic_ledger}, ?MODULE,
                                                                 ledger, []]}},
    {ok, {#{strategy => one_for_one, intensity => 5, period => 10}, [Child]}};
init(ledger) ->
    {ok, #{balance => 0}}.

handle_call({deposit, N}, _From, S = #{balance := B}) -> {reply, ok, S#{balance := B + N}};
handle_call(balance, _From, S = #{balance := B}) -> {reply, B, S}.

handle_cast({settle, Ms}, S) ->
    timer:sleep(Ms),
    ok = overdraw(S),
    {noreply, S}.

overdraw(#{balance := B}) when B > 100 -> ok;
overdraw(_) -> {error, overdrawn}.
