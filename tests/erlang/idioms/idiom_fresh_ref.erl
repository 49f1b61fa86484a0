%% Idiom: hand-written request/reply with a fresh reference: Ref =
%% make_ref(), send, then receive {Ref, Reply} -- the compiler's
%% selective-receive optimisation skips everything queued before the
%% make_ref. The callers are gen_servers that get other traffic (ticks and
%% casts) between their requests, so there is something to skip.
%% Mirrors: pre-gen_server style client APIs (eredis, older drivers, many
%% in-house libraries: `call(Pid, Req) -> Ref = make_ref(), Pid ! {self(),
%% Ref, Req}, receive {Ref, R} -> R after T -> exit(timeout) end`).
%% Traffic: 3 pollers asking a plain-process quote server every 2 ms plus
%% casts to them every 4 ms (~2200 messages/s).
-module(idiom_fresh_ref).
-behaviour(gen_server).

-export([start/0, stop/0, procs/0]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2, quote_server/1]).

-define(QUOTES, idiom_fresh_ref_quotes).
-define(LOAD, idiom_fresh_ref_load).

start() ->
    register(?QUOTES, proc_lib:spawn(?MODULE, quote_server, [#{}])),
    [{ok, _} = gen_server:start({local, poller(K)}, ?MODULE, K, []) || K <- [1, 2, 3]],
    register(?LOAD, spawn(fun() -> load(0) end)),
    ok.

stop() ->
    M = monitor(process, ?LOAD), ?LOAD ! stop,
    receive {'DOWN', M, _, _, _} -> ok end,
    [gen_server:stop(poller(K)) || K <- [1, 2, 3]],
    ?QUOTES ! stop,
    ok.

procs() -> [P || N <- [?QUOTES, ?LOAD | [poller(K) || K <- [1, 2, 3]]], P <- [whereis(N)], is_pid(P)].

poller(K) -> list_to_atom("idiom_fresh_ref_poller" ++ integer_to_list(K)).

%% the client API
quote(Symbol) ->
    Ref = make_ref(),
    ?QUOTES ! {quote, self(), Ref, Symbol},
    receive {Ref, Price} -> Price
    after 5000 -> exit({timeout, quote})
    end.

quote_server(Prices) ->
    receive
        stop -> ok;
        {quote, From, Ref, Sym} ->
            P = maps:get(Sym, Prices, 100) + 1,
            From ! {Ref, P},
            quote_server(Prices#{Sym => P})
    end.

load(N) ->
    receive stop -> ok
    after 4 -> [gen_server:cast(poller(K), {watch, N rem 9}) || K <- [1, 2, 3]], load(N + 1)
    end.

init(K) ->
    erlang:send_after(2, self(), tick),
    {ok, #{id => K, symbols => [1], last => #{}}}.

handle_call(_Req, _From, S) -> {reply, ok, S}.

handle_cast({watch, Sym}, S = #{symbols := Syms}) ->
    {noreply, S#{symbols := lists:sublist(lists:usort([Sym | Syms]), 4)}}.

handle_info(tick, S = #{symbols := Syms, last := Last}) ->
    erlang:send_after(2, self(), tick),
    Sym = hd(Syms),
    {noreply, S#{symbols := tl(Syms) ++ [Sym], last := Last#{Sym => quote(Sym)}}}.
