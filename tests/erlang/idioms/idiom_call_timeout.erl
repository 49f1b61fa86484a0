%% Idiom: gen_server timeouts. A session server returns {reply, R, S, 40}
%% and {noreply, S, 40}: when nothing comes for 40 ms, handle_info(timeout)
%% drops its per-session cache (an idle timeout). Clients work in bursts
%% (20 calls 2 ms apart, then a 60 ms pause), so the timeout fires in every
%% pause and never during a burst. Calls pass an explicit timeout
%% (gen_server:call(S, R, 1000)) that is never reached.
%% Mirrors: session/cart servers that free memory when a user goes quiet,
%% `{:reply, r, state, @idle_timeout}` in Elixir.
%% Traffic: 3 bursty clients (~600 calls/s while active), ~20 idle timeouts/s.
-module(idiom_call_timeout).
-behaviour(gen_server).

-export([start/0, stop/0, procs/0]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2]).

-define(IDLE, 40).
-define(LOAD, idiom_call_timeout_load).

start() ->
    [{ok, _} = gen_server:start({local, session(K)}, ?MODULE, K, []) || K <- [1, 2, 3]],
    start_load([fun() -> client(K, 0) end || K <- [1, 2, 3]]),
    ok.

stop() -> stop_load(), [gen_server:stop(session(K)) || K <- [1, 2, 3]], ok.

procs() -> [P || N <- [?LOAD | [session(K) || K <- [1, 2, 3]]], P <- [whereis(N)], is_pid(P)].

session(K) -> list_to_atom("idiom_call_timeout_session" ++ integer_to_list(K)).

client(K, N) ->
    Pause = case N rem 20 of 19 -> 60; _ -> 2 end,
    receive stop -> ok
    after Pause ->
        case N rem 4 of
            0 -> gen_server:cast(session(K), {touch, N});
            _ -> {ok, _} = gen_server:call(session(K), {item, N rem 10}, 1000)
        end,
        client(K, N + 1)
    end.

init(K) -> {ok, #{id => K, cache => #{}, expired => 0}, ?IDLE}.

handle_call({item, I}, _From, S = #{cache := C}) ->
    Item = case C of #{I := V} -> V; _ -> load(I) end,
    {reply, {ok, Item}, S#{cache := C#{I => Item}}, ?IDLE}.

handle_cast({touch, _N}, S) -> {noreply, S, ?IDLE}.

handle_info(timeout, S = #{expired := E}) ->
    {noreply, S#{cache := #{}, expired := E + 1}}.

load(I) -> #{item => I, price => I * 100}.

start_load(Loops) ->
    register(?LOAD, spawn(fun() -> [spawn_link(L) || L <- Loops],
                                   receive stop -> exit(shutdown) end end)).

stop_load() ->
    case whereis(?LOAD) of
        undefined -> ok;
        P -> M = monitor(process, P), P ! stop, receive {'DOWN', M, _, _, _} -> ok end
    end.
