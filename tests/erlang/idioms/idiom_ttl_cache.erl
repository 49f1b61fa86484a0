%% Idiom: a read-through cache with TTL and a size bound. Readers look up
%% ETS directly in their own process; on a miss (or an expired entry) they
%% call the owner, which loads the value (from a slow "database" server),
%% stores it with an expiry and answers. A sweep every 25 ms (send_after)
%% deletes expired rows; past 300 entries the oldest are evicted.
%% Mirrors: Cachex / ConCache / Nebulex local caches, `:ets` + GenServer
%% caches in front of Ecto.
%% Traffic: 3 readers, a read every 2 ms each (~1500 reads/s), 80% of them
%% on 50 hot keys, the rest over 1000 cold ones: ~500 misses/s go through
%% the owner and the database.
-module(idiom_ttl_cache).
-behaviour(gen_server).

-export([start/0, stop/0, procs/0]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2]).

-define(CACHE, idiom_ttl_cache_owner).
-define(DB, idiom_ttl_cache_db).
-define(TAB, idiom_ttl_cache_entries).
-define(LOAD, idiom_ttl_cache_load).
-define(TTL, 200).
-define(MAX, 300).

start() ->
    {ok, _} = gen_server:start({local, ?DB}, ?MODULE, db, []),
    {ok, _} = gen_server:start({local, ?CACHE}, ?MODULE, cache, []),
    start_load([fun() -> reader(R, 0) end || R <- [1, 2, 3]]),
    ok.

stop() -> stop_load(), [gen_server:stop(N) || N <- [?CACHE, ?DB]], ok.

procs() -> [P || N <- [?CACHE, ?DB, ?LOAD], P <- [whereis(N)], is_pid(P)].

reader(R, N) ->
    receive stop -> ok
    after 2 ->
        Key = case N rem 5 of
                  0 -> 50 + (N * 7 + R * 13) rem 1000;
                  _ -> (N * 7 + R) rem 50
              end,
        {ok, _} = lookup(Key),
        reader(R, N + 1)
    end.

%% the client API: ETS first, the owner on a miss
lookup(Key) ->
    Now = erlang:monotonic_time(millisecond),
    case ets:lookup(?TAB, Key) of
        [{Key, Value, Expires}] when Expires > Now -> {ok, Value};
        _ -> gen_server:call(?CACHE, {fetch, Key})
    end.

init(db) -> {ok, #{queries => 0}};
init(cache) ->
    ets:new(?TAB, [named_table, protected, set, {read_concurrency, true}]),
    erlang:send_after(25, self(), sweep),
    {ok, #{order => queue:new(), loads => 0}}.

handle_call({query, Key}, _From, S = #{queries := Q}) ->          % db
    {reply, #{key => Key, body => integer_to_binary(Key * 31)}, S#{queries := Q + 1}};
handle_call({fetch, Key}, _From, S = #{order := O, loads := L}) ->  % cache
    Value = gen_server:call(?DB, {query, Key}),
    ets:insert(?TAB, {Key, Value, erlang:monotonic_time(millisecond) + ?TTL}),
    {reply, {ok, Value}, evict(S#{order := queue:in(Key, O), loads := L + 1})}.

handle_cast(_Msg, S) -> {noreply, S}.

handle_info(sweep, S) ->
    erlang:send_after(25, self(), sweep),
    Now = erlang:monotonic_time(millisecond),
    ets:select_delete(?TAB, [{{'_', '_', '$1'}, [{'=<', '$1', Now}], [true]}]),
    {noreply, S}.

%% keep at most ?MAX entries: drop the oldest inserted
evict(S = #{order := O}) ->
    case ets:info(?TAB, size) > ?MAX of
        true -> {{value, Old}, O1} = queue:out(O), ets:delete(?TAB, Old), evict(S#{order := O1});
        false -> S#{order := trim(O)}
    end.

%% forget order entries for keys the sweep already dropped
trim(O) ->
    case queue:len(O) > ?MAX + 50 of
        true -> queue:filter(fun(K) -> ets:member(?TAB, K) end, O);
        false -> O
    end.

start_load(Loops) ->
    register(?LOAD, spawn(fun() -> [spawn_link(L) || L <- Loops],
                                   receive stop -> exit(shutdown) end end)).

stop_load() ->
    case whereis(?LOAD) of
        undefined -> ok;
        P -> M = monitor(process, P), P ! stop, receive {'DOWN', M, _, _, _} -> ok end
    end.
