%% A gen_statem for tests: a light switch that counts its flips.
-module(mic_switch).
-behaviour(gen_statem).

-export([start/0, flip/0]).
-export([init/1, callback_mode/0, off/3, on/3]).

start() ->
    {ok, Pid} = gen_statem:start({local, mic_switch}, ?MODULE, [], []),
    Pid.

flip() -> gen_statem:call(mic_switch, flip).

callback_mode() -> state_functions.

init([]) -> {ok, off, 0}.

off({call, From}, flip, N) -> {next_state, on, N + 1, [{reply, From, on}]}.

on({call, From}, flip, N) -> {next_state, off, N + 1, [{reply, From, off}]}.
