%% Bug: unbounded state growth. A payments API keeps an idempotency cache in
%% its gen_server state: every charge request carries an idempotency key, and
%% the server stores key => the response it gave, so a retried request gets
%% the same answer instead of charging twice. Keys are stored forever: there
%% is no TTL, no size bound, no eviction. Every new request adds an entry;
%% retries (the only reason the cache exists) are a few percent of traffic.
%% Mirrors: memo caches, "seen ids" dedup sets, session maps and
%% idempotency-key stores kept in a GenServer's state without expiry.
%% Traffic: ~200 charge requests/s from a few clients, each with a fresh
%% key, 1 in 20 a retry of a recent key.
%% Evidence: map_size of the server's `responses` grows ~200/s and never
%% shrinks; process_info(bug_state_growth_payments, memory/total_heap_size)
%% climbs steadily across GCs.
%% Root cause: the server adds an entry to its state map on every request and
%% never removes one (no TTL or bound), so its state and heap grow without end.
-module(bug_state_growth).
-behaviour(gen_server).

-export([start/0, stop/0, procs/0]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2]).

-define(PAYMENTS, bug_state_growth_payments).
-define(CLIENTS, bug_state_growth_clients).

start() ->
    {ok, _} = gen_server:start({local, ?PAYMENTS}, ?MODULE, [], []),
    register(?CLIENTS, spawn(fun() ->
        process_flag(trap_exit, true),
        Cs = [spawn_link(fun() -> client(C, 0) end) || C <- lists:seq(1, 4)],
        receive stop -> [exit(C, shutdown) || C <- Cs] end
    end)),
    ok.

stop() ->
    case whereis(?CLIENTS) of
        undefined -> ok;
        C -> M = monitor(process, C), C ! stop, receive {'DOWN', M, _, _, _} -> ok end
    end,
    catch gen_server:stop(?PAYMENTS),
    ok.

procs() -> [P || N <- [?PAYMENTS, ?CLIENTS], P <- [whereis(N)], is_pid(P)].

%% a client: a charge every ~20 ms, now and then a retry of an earlier one
client(C, N) ->
    timer:sleep(20),
    Key = case N rem 20 of
              19 -> key(C, N - 3);
              _ -> key(C, N)
          end,
    Charge = #{customer => {cus, C * 1000 + N rem 97}, amount => 100 + N rem 5000,
               currency => eur, description => "order " ++ integer_to_list(N),
               lines => [{line, {sku, (N * L) rem 9973}, L, 250 * L} || L <- lists:seq(1, 8)]},
    {ok, _Receipt} = gen_server:call(?PAYMENTS, {charge, Key, Charge}),
    client(C, N + 1).

key(C, N) -> {idem, C, N, erlang:phash2({C, N})}.

init([]) -> {ok, #{responses => #{}, charged => 0, replayed => 0}}.

handle_call({charge, Key, Charge}, _From, S = #{responses := R, charged := C, replayed := Rp}) ->
    case R of
        #{Key := Receipt} ->
            {reply, {ok, Receipt}, S#{replayed := Rp + 1}};
        _ ->
            Receipt = #{id => {ch, C + 1}, status => succeeded, charge => Charge,
                        created => erlang:system_time(millisecond),
                        balance_txn => {txn, erlang:unique_integer([positive])}},
            {reply, {ok, Receipt}, S#{responses := R#{Key => Receipt}, charged := C + 1}}
    end.

handle_cast(_Msg, S) -> {noreply, S}.

handle_info(_Msg, S) -> {noreply, S}.
