%% Idiom: a server that does not answer its calls itself: it hands the
%% caller's From to a worker process and returns {noreply, S}; the worker
%% does the slow part and calls gen_server:reply(From, Result). The server
%% stays free for the next request.
%% Mirrors: Elixir's `Task.start(fn -> GenServer.reply(from, render(x)) end);
%% {:noreply, state}` to keep a GenServer responsive (report rendering,
%% thumbnailing, upstream HTTP).
%% Traffic: 3 clients calling every 3 ms (~1000 calls/s, a worker each).
-module(idiom_reply_from_worker).
-behaviour(gen_server).

-export([start/0, stop/0, procs/0]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2]).

-define(SRV, idiom_reply_from_worker_renderer).
-define(LOAD, idiom_reply_from_worker_load).

start() ->
    {ok, _} = gen_server:start({local, ?SRV}, ?MODULE, [], []),
    start_load([fun() -> client(C, 0) end || C <- [1, 2, 3]]),
    ok.

stop() -> stop_load(), gen_server:stop(?SRV).

procs() -> [P || N <- [?SRV, ?LOAD], P <- [whereis(N)], is_pid(P)].

client(C, N) ->
    receive stop -> ok
    after 3 ->
        {ok, _Html} = gen_server:call(?SRV, {render, C, N}),
        client(C, N + 1)
    end.

init([]) -> {ok, #{started => 0, templates => #{page => <<"<p>~p</p>">>}}}.

handle_call({render, C, N}, From, S = #{started := K, templates := #{page := T}}) ->
    proc_lib:spawn(fun() -> gen_server:reply(From, render(T, {C, N})) end),
    {noreply, S#{started := K + 1}}.

render(Template, Args) ->
    {ok, iolist_to_binary(io_lib:format(binary_to_list(Template), [Args]))}.

handle_cast(_Msg, S) -> {noreply, S}.
handle_info(_Msg, S) -> {noreply, S}.

start_load(Loops) ->
    register(?LOAD, spawn(fun() -> [spawn_link(L) || L <- Loops],
                                   receive stop -> exit(shutdown) end end)).

stop_load() ->
    case whereis(?LOAD) of
        undefined -> ok;
        P -> M = monitor(process, P), P ! stop, receive {'DOWN', M, _, _, _} -> ok end
    end.
