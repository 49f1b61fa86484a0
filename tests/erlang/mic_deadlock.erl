%% Two gen_servers that call each other from inside their callbacks at the same
%% time: a deadlock that the call timeouts (1 s) finally break, crashing both.
-module(mic_deadlock).
-behaviour(gen_server).

-export([start/0, kick/0]).
-export([init/1, handle_call/3, handle_cast/2]).

start() ->
    {ok, A} = gen_server:start({local, mic_left}, ?MODULE, mic_right, []),
    {ok, B} = gen_server:start({local, mic_right}, ?MODULE, mic_left, []),
    {A, B}.

kick() ->
    gen_server:cast(mic_left, go),
    gen_server:cast(mic_right, go).

init(Other) -> {ok, Other}.

handle_cast(go, Other) ->
    pong = gen_server:call(Other, ping, 1000),   % never answered: Other is doing the same
    {noreply, Other}.

handle_call(ping, _From, Other) ->
    {reply, pong, Other}.
