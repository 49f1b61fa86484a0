%% Idiom: periodic work with erlang:send_after (re-armed in handle_info, as
%% Process.send_after(self(), :flush, 10) is), and a debounce with
%% erlang:start_timer + erlang:cancel_timer, where a timer that fires after
%% being superseded is recognised by its reference and ignored.
%% Mirrors: a metrics reporter (counters cast in, a flush every 10 ms to a
%% backend) and a config watcher that reloads 5 ms after the last change.
%% Traffic: ~1000 counter casts/s, a config change every 2-9 ms.
-module(idiom_send_after).
-behaviour(gen_server).

-export([start/0, stop/0, procs/0]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2]).

-define(REPORTER, idiom_send_after_reporter).
-define(BACKEND, idiom_send_after_backend).
-define(CONFIG, idiom_send_after_config).
-define(LOAD, idiom_send_after_load).

start() ->
    {ok, _} = gen_server:start({local, ?BACKEND}, ?MODULE, backend, []),
    {ok, _} = gen_server:start({local, ?REPORTER}, ?MODULE, reporter, []),
    {ok, _} = gen_server:start({local, ?CONFIG}, ?MODULE, config, []),
    start_load([fun() -> counters(0) end, fun() -> changes(0) end]),
    ok.

stop() ->
    stop_load(),
    [gen_server:stop(N) || N <- [?CONFIG, ?REPORTER, ?BACKEND]],
    ok.

procs() -> [P || N <- [?REPORTER, ?BACKEND, ?CONFIG], P <- [whereis(N)], is_pid(P)].

counters(N) ->
    receive stop -> ok
    after 2 ->
        gen_server:cast(?REPORTER, {incr, N rem 7}),
        gen_server:cast(?REPORTER, {incr, N rem 3}),
        counters(N + 1)
    end.

changes(N) ->
    receive stop -> ok
    after 2 + N rem 8 -> gen_server:cast(?CONFIG, {changed, N}), changes(N + 1)
    end.

init(backend) -> {ok, #{batches => 0}};
init(reporter) ->
    erlang:send_after(10, self(), flush),
    {ok, #{counts => #{}}};
init(config) -> {ok, #{timer => undefined, version => 0, reloads => 0}}.

handle_call(_Req, _From, S) -> {reply, ok, S}.

handle_cast({incr, K}, S = #{counts := C}) ->
    {noreply, S#{counts := maps:update_with(K, fun(V) -> V + 1 end, 1, C)}};
handle_cast({write, _Counts}, S = #{batches := B}) ->
    {noreply, S#{batches := B + 1}};
handle_cast({changed, V}, S = #{timer := T}) ->
    %% debounce: restart the 5 ms timer on every change
    _ = is_reference(T) andalso erlang:cancel_timer(T),
    {noreply, S#{timer := erlang:start_timer(5, self(), reload), version := V}}.

handle_info(flush, S = #{counts := C}) ->
    erlang:send_after(10, self(), flush),
    gen_server:cast(?BACKEND, {write, C}),
    {noreply, S#{counts := #{}}};
handle_info({timeout, T, reload}, S = #{timer := T, reloads := R}) ->
    {noreply, S#{timer := undefined, reloads := R + 1}};
handle_info({timeout, _Stale, reload}, S) ->
    %% cancelled too late: it had already fired
    {noreply, S}.

start_load(Loops) ->
    register(?LOAD, spawn(fun() -> [spawn_link(L) || L <- Loops],
                                   receive stop -> exit(shutdown) end end)).

stop_load() ->
    case whereis(?LOAD) of
        undefined -> ok;
        P -> M = monitor(process, P), P ! stop, receive {'DOWN', M, _, _, _} -> ok end
    end.
