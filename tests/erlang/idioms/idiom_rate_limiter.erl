%% Idiom: a token-bucket rate limiter: a gen_server holding up to 20 tokens,
%% refilled by 10 every 10 ms from timer:send_interval (1000 requests/s).
%% Callers that get {error, rate_limited} back off for 5 ms and try again;
%% nothing queues up, the limiter only ever answers.
%% Mirrors: Hammer/ExRated-style limiters in front of a third-party API,
%% per-tenant throttles.
%% Traffic: 3 callers wanting ~1500 requests/s together: about a third are
%% refused and retried.
-module(idiom_rate_limiter).
-behaviour(gen_server).

-export([start/0, stop/0, procs/0]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2]).

-define(LIMITER, idiom_rate_limiter_bucket).
-define(API, idiom_rate_limiter_api).
-define(LOAD, idiom_rate_limiter_load).

start() ->
    {ok, _} = gen_server:start({local, ?API}, ?MODULE, api, []),
    {ok, _} = gen_server:start({local, ?LIMITER}, ?MODULE, bucket, []),
    start_load([fun() -> caller(C, 0) end || C <- [1, 2, 3]]),
    ok.

stop() -> stop_load(), [gen_server:stop(N) || N <- [?LIMITER, ?API]], ok.

procs() -> [P || N <- [?LIMITER, ?API, ?LOAD], P <- [whereis(N)], is_pid(P)].

caller(C, N) ->
    receive stop -> ok
    after 2 ->
        case gen_server:call(?LIMITER, acquire) of
            ok -> gen_server:cast(?API, {request, C, N}), caller(C, N + 1);
            {error, rate_limited} -> backoff(C, N)
        end
    end.

backoff(C, N) ->
    receive stop -> ok
    after 5 -> caller(C, N)
    end.

init(api) -> {ok, #{sent => 0}};
init(bucket) ->
    {ok, _} = timer:send_interval(10, refill),
    {ok, #{tokens => 20, granted => 0, refused => 0}}.

handle_call(acquire, _From, S = #{tokens := 0, refused := R}) ->
    {reply, {error, rate_limited}, S#{refused := R + 1}};
handle_call(acquire, _From, S = #{tokens := T, granted := G}) ->
    {reply, ok, S#{tokens := T - 1, granted := G + 1}}.

handle_cast({request, _C, _N}, S = #{sent := K}) -> {noreply, S#{sent := K + 1}}.

handle_info(refill, S = #{tokens := T}) -> {noreply, S#{tokens := min(20, T + 10)}}.

start_load(Loops) ->
    register(?LOAD, spawn(fun() -> [spawn_link(L) || L <- Loops],
                                   receive stop -> exit(shutdown) end end)).

stop_load() ->
    case whereis(?LOAD) of
        undefined -> ok;
        P -> M = monitor(process, P), P ! stop, receive {'DOWN', M, _, _, _} -> ok end
    end.
