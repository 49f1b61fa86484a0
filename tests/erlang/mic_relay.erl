%% A relay per node, for the cluster tests: a token travels from node to node
%% (casts to {mic_relay, Node}), and each relay asks the next for its count
%% (a call across nodes) every few hops. Plain Erlang, so OTP 25 and 28 nodes
%% run the same code.
%%
%%   start()            the registered relay on this node
%%   pass(Route, Hops)  send a token along Route (node names, cycled) for Hops hops
%%   hops()             how many hops this node's relay has handled
-module(mic_relay).
-behaviour(gen_server).

-export([start/0, pass/2, hops/0]).
-export([init/1, handle_call/3, handle_cast/2]).

start() ->
    {ok, Pid} = gen_server:start({local, mic_relay}, ?MODULE, [], []),
    Pid.

pass(Route, Hops) ->
    gen_server:cast({mic_relay, hd(Route)}, {token, Route, Hops}).

hops() ->
    gen_server:call(mic_relay, hops).

init([]) -> {ok, #{hops => 0}}.

handle_call(hops, _From, S = #{hops := H}) -> {reply, H, S}.

handle_cast({token, _Route, 0}, S) ->
    {noreply, S};
handle_cast({token, [_Here | Rest] = Route, Left}, S = #{hops := H}) ->
    Next = case Rest of [] -> hd(Route); _ -> hd(Rest) end,
    Route1 = Rest ++ [hd(Route)],
    case H rem 5 of
        4 -> _ = catch gen_server:call({mic_relay, Next}, hops, 1000);
        _ -> ok
    end,
    gen_server:cast({mic_relay, Next}, {token, Route1, Left - 1}),
    {noreply, S#{hops := H + 1}}.
