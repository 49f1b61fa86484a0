%% Idiom: gen_statem in handle_event_function mode with state_enter and
%% complex states: a device driver that runs one job at a time. States are
%% idle | {busy, Job, From}. A job takes a state_timeout to complete; jobs
%% submitted while busy are postponed; an event timeout notices idle spells;
%% a generic timeout polls the device's health every 25 ms in any state.
%% Mirrors: a serial-line / modem / printer driver, a single-flight
%% protocol client (SMTP, a license server), written as a gen_statem.
%% Traffic: 3 clients submitting a job every 10 ms (~300 jobs/s, ~1 ms each),
%% a status cast every 15 ms.
-module(idiom_statem_events).
-behaviour(gen_statem).

-export([start/0, stop/0, procs/0]).
-export([init/1, callback_mode/0, handle_event/4]).

-define(DEV, idiom_statem_events_device).
-define(LOAD, idiom_statem_events_load).

start() ->
    {ok, _} = gen_statem:start({local, ?DEV}, ?MODULE, [], []),
    start_load([fun() -> client(C, 0) end || C <- [1, 2, 3]] ++ [fun() -> status(0) end]),
    ok.

stop() -> stop_load(), gen_statem:stop(?DEV).

procs() -> [P || N <- [?DEV, ?LOAD], P <- [whereis(N)], is_pid(P)].

client(C, N) ->
    receive stop -> ok
    after 10 -> {done, _} = gen_statem:call(?DEV, {submit, {C, N}}), client(C, N + 1)
    end.

status(N) ->
    receive stop -> ok
    after 15 -> gen_statem:cast(?DEV, {status, N}), status(N + 1)
    end.

callback_mode() -> [handle_event_function, state_enter].

init([]) ->
    {ok, idle, #{jobs => 0, polls => 0, idle_spells => 0, status => none},
     [{{timeout, health}, 25, poll}]}.

%% state enter calls
handle_event(enter, _Old, idle, _D) ->
    {keep_state_and_data, [{timeout, 5, idle_spell}]};
handle_event(enter, _Old, {busy, _Job, _From}, _D) ->
    {keep_state_and_data, [{state_timeout, 1, job_done}]};
%% idle: take a job
handle_event({call, From}, {submit, Job}, idle, D) ->
    {next_state, {busy, Job, From}, D};
handle_event(timeout, idle_spell, idle, D = #{idle_spells := I}) ->
    {keep_state, D#{idle_spells := I + 1}};
%% busy: finish it, postpone the rest
handle_event(state_timeout, job_done, {busy, Job, From}, D = #{jobs := J}) ->
    {next_state, idle, D#{jobs := J + 1}, [{reply, From, {done, Job}}]};
handle_event({call, _From}, {submit, _}, {busy, _, _}, _D) ->
    {keep_state_and_data, [postpone]};
%% any state
handle_event(cast, {status, N}, _State, D) ->
    {keep_state, D#{status := N}};
handle_event({timeout, health}, poll, _State, D = #{polls := P}) ->
    {keep_state, D#{polls := P + 1}, [{{timeout, health}, 25, poll}]}.

start_load(Loops) ->
    register(?LOAD, spawn(fun() -> [spawn_link(L) || L <- Loops],
                                   receive stop -> exit(shutdown) end end)).

stop_load() ->
    case whereis(?LOAD) of
        undefined -> ok;
        P -> M = monitor(process, P), P ! stop, receive {'DOWN', M, _, _, _} -> ok end
    end.
