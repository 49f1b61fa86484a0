%% mic_statem_fn's machine in handle_event_function mode (state enter too).
-module(mic_statem_ev).
-behaviour(gen_statem).

-export([start/1]).
-export([init/1, callback_mode/0, handle_event/4]).

-define(RETRY_MS, 200).
-define(BUSY_MS, 500).
-define(QUIET_MS, 150).

start(Name) ->
    {ok, Pid} = gen_statem:start({local, Name}, ?MODULE, [], []),
    Pid.

callback_mode() -> [handle_event_function, state_enter].

init([]) -> {ok, idle, #{enters => 0, notes => [], pings => 0, ticks => 0, retries => 0,
                         job => none, done => []}}.

handle_event(enter, _Old, idle, D = #{enters := E}) -> {keep_state, D#{enters := E + 1}};
handle_event(enter, _Old, busy, _D) -> {keep_state_and_data, [{state_timeout, ?BUSY_MS, done}]};
handle_event({call, From}, {job, J}, idle, D) ->
    {next_state, busy, D#{job := J}, [{reply, From, {ok, J}}, {{timeout, retry}, ?RETRY_MS, J}]};
handle_event({call, From}, status, idle, _D) -> {keep_state_and_data, [{reply, From, idle}]};
handle_event({call, From}, status, busy, #{job := J}) -> {keep_state_and_data, [{reply, From, {busy, J}}]};
handle_event(cast, {note, X}, idle, D = #{notes := Ns}) -> {keep_state, D#{notes := [X | Ns]}};
handle_event(cast, {note, _}, busy, _D) -> {keep_state_and_data, [postpone]};
handle_event(info, ping, idle, D = #{pings := P}) ->
    {keep_state, D#{pings := P + 1}, [{timeout, ?QUIET_MS, quiet}]};
handle_event(timeout, quiet, idle, D = #{ticks := T}) -> {keep_state, D#{ticks := T + 1}};
handle_event({timeout, retry}, _J, busy, D = #{retries := R}) -> {keep_state, D#{retries := R + 1}};
handle_event(state_timeout, done, busy, D = #{job := J, done := Done}) ->
    {next_state, idle, D#{job := none, done := [J | Done]}}.
