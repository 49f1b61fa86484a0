%% Idiom: a deferred reply. A blocking job queue: `pop` on an empty queue
%% returns {noreply, S} and keeps the caller's From; a later `push` answers
%% the oldest waiting caller with gen_server:reply. Consumers therefore sit
%% in gen_server:call (infinity) until there is work.
%% Mirrors: in-house job queues and "wait for the next value" long polls,
%% GenServer.reply-based blocking queues (the pattern inside poolboy's
%% checkout queue and many work-stealing pools).
%% Traffic: a producer pushing ~600 jobs/s, 3 consumers popping and doing a
%% few hundred microseconds of work each.
-module(idiom_deferred_reply).
-behaviour(gen_server).

-export([start/0, stop/0, procs/0]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2]).

-define(QUEUE, idiom_deferred_reply_queue).
-define(LOAD, idiom_deferred_reply_load).

start() ->
    {ok, _} = gen_server:start({local, ?QUEUE}, ?MODULE, [], []),
    start_load([fun() -> producer(0) end | [fun() -> consumer(C) end || C <- [1, 2, 3]]]),
    ok.

stop() -> stop_load(), gen_server:stop(?QUEUE).

procs() -> [P || N <- [?QUEUE, ?LOAD], P <- [whereis(N)], is_pid(P)].

producer(N) ->
    receive stop -> ok
    after 5 ->
        [gen_server:cast(?QUEUE, {push, {resize_image, N + K}}) || K <- [1, 2, 3]],
        producer(N + 3)
    end.

consumer(C) ->
    {resize_image, N} = gen_server:call(?QUEUE, pop, infinity),
    _ = erlang:phash2(lists:seq(1, 100 + N rem 100)),
    consumer(C).

init([]) -> {ok, #{jobs => queue:new(), waiting => queue:new(), served => 0}}.

handle_call(pop, From, S = #{jobs := J, waiting := W}) ->
    case queue:out(J) of
        {{value, Job}, J1} -> {reply, Job, S#{jobs := J1}};
        {empty, _} -> {noreply, S#{waiting := queue:in(From, W)}}
    end.

handle_cast({push, Job}, S = #{jobs := J, waiting := W, served := N}) ->
    case queue:out(W) of
        {{value, From}, W1} ->
            gen_server:reply(From, Job),
            {noreply, S#{waiting := W1, served := N + 1}};
        {empty, _} ->
            {noreply, S#{jobs := queue:in(Job, J)}}
    end.

handle_info(_Msg, S) -> {noreply, S}.

start_load(Loops) ->
    register(?LOAD, spawn(fun() -> [spawn_link(L) || L <- Loops],
                                   receive stop -> exit(shutdown) end end)).

stop_load() ->
    case whereis(?LOAD) of
        undefined -> ok;
        P -> M = monitor(process, P), P ! stop, receive {'DOWN', M, _, _, _} -> ok end
    end.
