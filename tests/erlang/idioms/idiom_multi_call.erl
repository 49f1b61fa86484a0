%% Idiom: cluster-style calls on a one-node cluster: gen_server:multi_call
%% and gen_server:abcast over [node()], erpc:call and erpc:multicall to the
%% local node. Code written for a cluster runs unchanged on a single node.
%% Mirrors: a config/feature-flag service that asks every node's replica
%% (multi_call), invalidates caches everywhere (abcast), and reads node-local
%% facts with erpc (as libcluster-era apps do, deployed on one node).
%% Traffic: a coordinator doing each every few ms (~500 calls/s).
-module(idiom_multi_call).
-behaviour(gen_server).

-export([start/0, stop/0, procs/0]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2, local_flags/1]).

-define(REPLICA, idiom_multi_call_flags).
-define(COORD, idiom_multi_call_coordinator).

start() ->
    {ok, _} = gen_server:start({local, ?REPLICA}, ?MODULE, replica, []),
    {ok, _} = gen_server:start({local, ?COORD}, ?MODULE, coordinator, []),
    ok.

stop() -> [gen_server:stop(N) || N <- [?COORD, ?REPLICA]], ok.

procs() -> [P || N <- [?COORD, ?REPLICA], P <- [whereis(N)], is_pid(P)].

%% what erpc runs on each node
local_flags(Keys) -> [{K, persistent_term:get({?MODULE, K}, false)} || K <- Keys].

init(replica) ->
    [persistent_term:put({?MODULE, K}, K rem 2 =:= 0) || K <- lists:seq(1, 5)],
    {ok, #{flags => #{dark_mode => true}, version => 0}};
init(coordinator) ->
    erlang:send_after(2, self(), round),
    {ok, 0}.

handle_call({get, Flag}, _From, S = #{flags := F}) -> {reply, maps:get(Flag, F, false), S}.

handle_cast({set, Flag, V}, S = #{flags := F, version := N}) ->
    {noreply, S#{flags := F#{Flag => V}, version := N + 1}}.

handle_info(round, N) ->
    erlang:send_after(2, self(), round),
    Nodes = [node() | nodes()],
    case N rem 4 of
        0 -> {[{_, _}], []} = gen_server:multi_call(Nodes, ?REPLICA, {get, dark_mode}, 1000);
        1 -> abcast = gen_server:abcast(Nodes, ?REPLICA, {set, beta, N rem 8 =:= 1});
        2 -> [_ | _] = erpc:call(node(), ?MODULE, local_flags, [[1, 2, 3]], 1000);
        3 -> [{ok, _}] = erpc:multicall(Nodes, ?MODULE, local_flags, [[4, 5]], 1000)
    end,
    {noreply, N + 1}.
