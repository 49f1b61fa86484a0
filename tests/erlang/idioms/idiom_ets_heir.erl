%% Idiom: an ETS table that outlives its owner. A keeper process is the
%% table's heir: when the owner exits the table goes to the keeper
%% ('ETS-TRANSFER'); the restarted owner claims it back (ets:give_away).
%% The owner is restarted on purpose every 300 ms (terminate_child +
%% restart_child: an operator's config reload), so the table changes hands
%% all the time while writers keep using it (public, by name).
%% Mirrors: the "heir" / Eternal pattern for caches and counters that must
%% survive the owning GenServer's restarts.
%% Traffic: a writer inserting and reading ~1000 rows/s, the owner sweeping
%% old rows every 20 ms, a reload every 300 ms.
-module(idiom_ets_heir).
-behaviour(gen_server).

-export([start/0, stop/0, procs/0]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2, start_owner/0, ops/0]).

-define(SUP, idiom_ets_heir_sup).
-define(KEEPER, idiom_ets_heir_keeper).
-define(OWNER, idiom_ets_heir_owner).
-define(OPS, idiom_ets_heir_ops).
-define(TAB, idiom_ets_heir_sessions).

start() ->
    {ok, Sup} = supervisor:start_link({local, ?SUP}, ?MODULE, sup),
    unlink(Sup),
    register(?OPS, proc_lib:spawn(?MODULE, ops, [])),
    ok.

stop() ->
    M = monitor(process, ?OPS), ?OPS ! stop,
    receive {'DOWN', M, _, _, _} -> ok end,
    gen_server:stop(?SUP).

procs() -> [P || N <- [?SUP, ?KEEPER, ?OWNER, ?OPS], P <- [whereis(N)], is_pid(P)].

start_owner() -> gen_server:start_link({local, ?OWNER}, ?MODULE, owner, []).

%% the writer and the operator's reloads
ops() ->
    erlang:send_after(300, self(), reload),
    ops(0).

ops(N) ->
    receive
        stop -> ok;
        reload ->
            erlang:send_after(300, self(), reload),
            ok = supervisor:terminate_child(?SUP, owner),
            {ok, _} = supervisor:restart_child(?SUP, owner),
            ops(N)
    after 1 ->
        Now = erlang:monotonic_time(millisecond),
        ets:insert(?TAB, {N rem 500, Now}),
        _ = ets:lookup(?TAB, (N * 7) rem 500),
        ops(N + 1)
    end.

init(sup) ->
    {ok, {#{strategy => one_for_one, intensity => 5, period => 5},
          [#{id => keeper, start => {gen_server, start_link, [{local, ?KEEPER}, ?MODULE, keeper, []]}},
           #{id => owner, start => {?MODULE, start_owner, []}}]}};
init(keeper) ->
    ets:new(?TAB, [named_table, public, set]),
    {ok, #{waiting => []}};
init(owner) ->
    gen_server:cast(?KEEPER, {claim, self()}),
    erlang:send_after(20, self(), sweep),
    {ok, #{table => none}}.

handle_call(_Req, _From, S) -> {reply, ok, S}.

%% keeper: give the table to the owner that claims it, once it holds it
handle_cast({claim, Pid}, S = #{waiting := W}) ->
    case ets:info(?TAB, owner) =:= self() of
        true -> ets:give_away(?TAB, Pid, from_keeper), {noreply, S};
        false -> {noreply, S#{waiting := W ++ [Pid]}}
    end.

handle_info({'ETS-TRANSFER', ?TAB, _From, from_keeper}, S) ->   % owner
    ets:setopts(?TAB, {heir, whereis(?KEEPER), back_to_keeper}),
    {noreply, S#{table := ?TAB}};
handle_info({'ETS-TRANSFER', ?TAB, _From, back_to_keeper}, S = #{waiting := W}) ->   % keeper
    case [P || P <- W, is_process_alive(P)] of
        [Next | _] -> ets:give_away(?TAB, Next, from_keeper), {noreply, S#{waiting := []}};
        [] -> {noreply, S#{waiting := []}}
    end;
handle_info(sweep, S) ->   % owner: drop rows older than 200 ms
    erlang:send_after(20, self(), sweep),
    Old = erlang:monotonic_time(millisecond) - 200,
    ets:select_delete(?TAB, [{{'_', '$1'}, [{'<', '$1', Old}], [true]}]),
    {noreply, S}.
