%% Bug: a late reply crashes the server. An FX-rate gen_server answers
%% conversion calls from a rate cache and refreshes a currency pair from the
%% rates backend when its cached rate is older than 200 ms. The refresh is a
%% hand-rolled request: send {rate, self(), Ref, Pair} to the backend, then
%% receive {Ref, Rate} with a 100 ms timeout (falling back to the stale
%% rate). When the backend is slow, its reply arrives after the timeout and
%% lands in the server's mailbox as an ordinary message; gen_server hands it
%% to handle_info/2, which only knows the periodic `prune` tick, and the
%% server crashes with function_clause. The supervisor restarts it empty: the
%% rate cache and all its counters are gone.
%% Mirrors: raw send/receive-with-timeout inside gen_server callbacks
%% (instead of gen_server:call, or a flush of the late reply / a catch-all
%% handle_info clause); also stray tcp/udp/nodedown/DOWN messages reaching a
%% handle_info written for one message.
%% Traffic: 4 clients converting amounts every ~10 ms; the backend answers in
%% ~1 ms. trigger/0: the backend has a GC pause / slow query: its next
%% reply takes 300 ms.
%% Evidence: a gen_server crash report for bug_unhandled_info_crash_fx with
%% function_clause in handle_info/2, "Last message in was {#Ref<...>,
%% {rate, ...}}"; the supervisor restarts it (new pid); its `served` and
%% `refreshes` counters drop back to 0 and its cache is empty again.
%% Root cause: a reply that arrives after the hand-rolled receive timed out
%% is delivered to handle_info/2, which has no clause for it, so the server
%% crashes and loses its state.
-module(bug_unhandled_info_crash).
-behaviour(gen_server).

-export([start/0, stop/0, procs/0, trigger/0]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2, start_fx/0]).

-define(SUP, bug_unhandled_info_crash_sup).
-define(FX, bug_unhandled_info_crash_fx).
-define(BACKEND, bug_unhandled_info_crash_backend).
-define(CLIENTS, bug_unhandled_info_crash_clients).
-define(PAIRS, [{eur, usd}, {eur, gbp}, {usd, jpy}, {gbp, chf}]).

start() ->
    {ok, _} = gen_server:start({local, ?BACKEND}, ?MODULE, backend, []),
    {ok, Sup} = supervisor:start_link({local, ?SUP}, ?MODULE, sup),
    unlink(Sup),
    register(?CLIENTS, spawn(fun() ->
        process_flag(trap_exit, true),
        Cs = [spawn_link(fun() -> client(C, 0) end) || C <- lists:seq(1, 4)],
        receive stop -> [exit(C, shutdown) || C <- Cs] end
    end)),
    ok.

trigger() ->
    gen_server:cast(?BACKEND, {slow_next, 300}),
    ok.

stop() ->
    case whereis(?CLIENTS) of
        undefined -> ok;
        P -> M = monitor(process, P), P ! stop, receive {'DOWN', M, _, _, _} -> ok end
    end,
    [catch gen_server:stop(N) || N <- [?SUP, ?BACKEND]],
    ok.

procs() -> [P || N <- [?SUP, ?FX, ?BACKEND, ?CLIENTS], P <- [whereis(N)], is_pid(P)].

client(C, N) ->
    timer:sleep(10),
    Pair = lists:nth(1 + (C + N) rem length(?PAIRS), ?PAIRS),
    _ = (catch gen_server:call(?FX, {convert, Pair, 100 + N rem 900})),
    client(C, N + 1).

start_fx() -> gen_server:start_link({local, ?FX}, ?MODULE, fx, []).

init(sup) ->
    {ok, {#{strategy => one_for_one, intensity => 5, period => 10},
          [#{id => fx, start => {?MODULE, start_fx, []}}]}};
init(fx) ->
    erlang:send_after(1000, self(), prune),
    {ok, #{rates => #{}, served => 0, refreshes => 0, stale => 0}};
init(backend) ->
    {ok, #{delay => 0, answered => 0}}.

%% fx: convert from the cache, refreshing a pair older than 200 ms
handle_call({convert, Pair, Amount}, _From, S = #{rates := Rates, served := Sv}) ->
    Now = erlang:monotonic_time(millisecond),
    S1 = case Rates of
             #{Pair := {_Rate, At}} when Now - At < 200 -> S;
             _ -> refresh(Pair, Now, S)
         end,
    #{rates := #{Pair := {Rate, _}}} = S1,
    {reply, {ok, Amount * Rate}, S1#{served := Sv + 1}}.

refresh(Pair, Now, S = #{rates := Rates, refreshes := R, stale := St}) ->
    Ref = make_ref(),
    ?BACKEND ! {rate, self(), Ref, Pair},
    receive
        {Ref, {rate, Pair, Rate}} -> S#{rates := Rates#{Pair => {Rate, Now}}, refreshes := R + 1}
    after 100 ->
        case Rates of
            #{Pair := _} -> S#{stale := St + 1};          % serve the stale rate
            _ -> S#{rates := Rates#{Pair => {1.0, Now}}, stale := St + 1}
        end
    end.

%% backend: {slow_next, Ms} makes its next answer late
handle_cast({slow_next, Ms}, S) -> {noreply, S#{delay := Ms}}.

%% fx: the periodic cache prune
handle_info(prune, S = #{rates := Rates}) ->
    erlang:send_after(1000, self(), prune),
    Old = erlang:monotonic_time(millisecond) - 5000,
    {noreply, S#{rates := maps:filter(fun(_, {_, At}) -> At > Old end, Rates)}};
%% backend
handle_info({rate, From, Ref, {A, B} = Pair}, S = #{delay := D, answered := N}) ->
    D > 0 andalso timer:sleep(D),
    From ! {Ref, {rate, Pair, 1.0 + erlang:phash2({A, B, N div 50}, 1000) / 1000}},
    {noreply, S#{delay := 0, answered := N + 1}}.
