%% Bug: long schedules. A session registry checkpoints its whole session
%% table to a standby replica once a second, and to keep the checkpoint small
%% it encodes it with term_to_binary(Sessions, [{compressed, 9}]). Best
%% compression of a large term runs in the emulator in long slices (zlib
%% deflates big chunks between yields): the registry occupies its scheduler
%% uninterrupted for 100+ ms at a time, several times per checkpoint. Other
%% processes queued on that scheduler wait; a latency-sensitive ticker (a
%% 10 ms rate-limit refill) fires late, and the registry's own lookups stall.
%% Mirrors: periodic state snapshots/persistence (term_to_binary with
%% compression, a huge binary:replace/split, crypto over big inputs in one
%% call) done inside a busy GenServer.
%% Traffic: 60 000 sessions; ~100 session touches/s; a checkpoint every 1 s;
%% the ticker every 10 ms.
%% Evidence: erlang:system_monitor(Pid, [{long_schedule, 50}]) reports
%% bug_long_schedule_registry running 100-500 ms at a stretch inside
%% term_to_binary/2 about once a second; the ticker's worst lateness jumps
%% to tens-hundreds of ms at each checkpoint.
%% Root cause: the registry compresses its whole large state in one
%% term_to_binary call at maximum compression, which runs for hundreds of ms
%% per slice without yielding and starves other work on that scheduler.
-module(bug_long_schedule).
-behaviour(gen_server).

-export([start/0, stop/0, procs/0]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2]).

-define(REGISTRY, bug_long_schedule_registry).
-define(REPLICA, bug_long_schedule_replica).
-define(TICKER, bug_long_schedule_ticker).
-define(CLIENTS, bug_long_schedule_clients).
-define(SESSIONS, 60000).

start() ->
    {ok, _} = gen_server:start({local, ?REPLICA}, ?MODULE, replica, []),
    {ok, _} = gen_server:start({local, ?REGISTRY}, ?MODULE, registry, []),
    {ok, _} = gen_server:start({local, ?TICKER}, ?MODULE, ticker, []),
    register(?CLIENTS, spawn(fun() -> clients(0) end)),
    ok.

stop() ->
    case whereis(?CLIENTS) of
        undefined -> ok;
        P -> M = monitor(process, P), P ! stop, receive {'DOWN', M, _, _, _} -> ok end
    end,
    [catch gen_server:stop(N) || N <- [?TICKER, ?REGISTRY, ?REPLICA]],
    ok.

procs() -> [P || N <- [?REGISTRY, ?REPLICA, ?TICKER, ?CLIENTS], P <- [whereis(N)], is_pid(P)].

clients(N) ->
    receive stop -> ok
    after 10 ->
        gen_server:cast(?REGISTRY, {touch, (N * 7919) rem ?SESSIONS}),
        clients(N + 1)
    end.

init(registry) ->
    Now = erlang:system_time(second),
    Sessions = maps:from_list([{Id, session(Id, Now)} || Id <- lists:seq(0, ?SESSIONS - 1)]),
    erlang:send_after(1000, self(), checkpoint),
    {ok, #{sessions => Sessions, checkpoints => 0}};
init(replica) ->
    {ok, #{last => undefined, bytes => 0}};
init(ticker) ->
    erlang:send_after(10, self(), {tick, erlang:monotonic_time(millisecond) + 10}),
    {ok, #{tokens => 0, ticks => 0, worst_late_ms => 0, late_ticks => 0}}.

session(Id, Now) ->
    #{user => <<"user-", (integer_to_binary(Id))/binary>>, ip => {10, 0, Id rem 256, 7},
      started => Now, seen => Now, roles => [reader, writer], node => node()}.

handle_call(size, _From, S = #{sessions := Ss}) -> {reply, map_size(Ss), S}.

handle_cast({touch, Id}, S = #{sessions := Ss}) ->
    Session = maps:get(Id, Ss),
    {noreply, S#{sessions := Ss#{Id := Session#{seen := erlang:system_time(second)}}}};
handle_cast({checkpoint, N, Blob}, S) ->   % replica
    {noreply, S#{last := N, bytes := byte_size(Blob)}}.

%% registry: the checkpoint, the whole table in one call
handle_info(checkpoint, S = #{sessions := Ss, checkpoints := N}) ->
    erlang:send_after(1000, self(), checkpoint),
    Blob = term_to_binary(Ss, [{compressed, 9}]),
    gen_server:cast(?REPLICA, {checkpoint, N + 1, Blob}),
    {noreply, S#{checkpoints := N + 1}};
%% ticker: refill the rate limiter every 10 ms, note how late each tick is
handle_info({tick, Due}, S = #{tokens := T, ticks := K, worst_late_ms := W, late_ticks := L}) ->
    Now = erlang:monotonic_time(millisecond),
    Late = Now - Due,
    erlang:send_after(10, self(), {tick, Now + 10}),
    {noreply, S#{tokens := min(T + 5, 100), ticks := K + 1, worst_late_ms := max(W, Late),
                  late_ticks := L + (case Late > 20 of true -> 1; false -> 0 end)}}.
