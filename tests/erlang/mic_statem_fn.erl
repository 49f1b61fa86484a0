%% A gen_statem for tests (state_functions, state enter): a worker that takes
%% one job at a time. A job arms a generic timeout ({timeout, retry}); busy
%% arms a state_timeout on entry; notes cast while busy are postponed; a ping
%% while idle arms an event timeout. mic_statem_ev is the same machine in
%% handle_event_function mode.
-module(mic_statem_fn).
-behaviour(gen_statem).

-export([start/1]).
-export([init/1, callback_mode/0, idle/3, busy/3]).

-define(RETRY_MS, 200).
-define(BUSY_MS, 500).
-define(QUIET_MS, 150).

start(Name) ->
    {ok, Pid} = gen_statem:start({local, Name}, ?MODULE, [], []),
    Pid.

callback_mode() -> [state_functions, state_enter].

init([]) -> {ok, idle, #{enters => 0, notes => [], pings => 0, ticks => 0, retries => 0,
                         job => none, done => []}}.

idle(enter, _Old, D = #{enters := E}) -> {keep_state, D#{enters := E + 1}};
idle({call, From}, {job, J}, D) ->
    {next_state, busy, D#{job := J}, [{reply, From, {ok, J}}, {{timeout, retry}, ?RETRY_MS, J}]};
idle(cast, {note, X}, D = #{notes := Ns}) -> {keep_state, D#{notes := [X | Ns]}};
idle(info, ping, D = #{pings := P}) -> {keep_state, D#{pings := P + 1}, [{timeout, ?QUIET_MS, quiet}]};
idle(timeout, quiet, D = #{ticks := T}) -> {keep_state, D#{ticks := T + 1}};
idle({call, From}, status, _D) -> {keep_state_and_data, [{reply, From, idle}]}.

busy(enter, _Old, _D) -> {keep_state_and_data, [{state_timeout, ?BUSY_MS, done}]};
busy(cast, {note, _}, _D) -> {keep_state_and_data, [postpone]};
busy({call, From}, status, #{job := J}) -> {keep_state_and_data, [{reply, From, {busy, J}}]};
busy({timeout, retry}, _J, D = #{retries := R}) -> {keep_state, D#{retries := R + 1}};
busy(state_timeout, done, D = #{job := J, done := Done}) ->
    {next_state, idle, D#{job := none, done := [J | Done]}}.
