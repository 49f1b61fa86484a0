%% Bug: wrong supervision strategy. An ingest pipeline is two workers under
%% one supervisor: a feed (producer) that decodes records from upstream and
%% buffers them, and an indexer (consumer) that subscribes to the feed when it
%% starts and then pulls events by demand, GenStage-style: it keeps the
%% feed's pid and sends {ask, N} to it; the feed keeps the indexer in its
%% subscriber list. The supervisor is one_for_one. When the feed crashes on a
%% corrupt record, the supervisor restarts only the feed: the new feed has no
%% subscribers and buffers everything, and the indexer (never restarted, so
%% it never re-subscribes) still holds the dead feed's pid, its last ask went
%% there, and it waits for events that never come. Indexing stops silently;
%% nothing else crashes.
%% Mirrors: GenStage/Broadway-like producer-consumer pairs, a connection
%% plus the workers that registered with it, any child that captured a
%% sibling's pid in init, under one_for_one instead of rest_for_one (or
%% one_for_all).
%% Traffic: ~100 records/s from the upstream source; the indexer asks for 10
%% at a time. trigger/0: the upstream sends one corrupt record.
%% Evidence: bug_wrong_strategy_sup restarts bug_wrong_strategy_feed (new pid)
%% after a badarg in binary_to_term; bug_wrong_strategy_indexer keeps its pid
%% and its `indexed` count freezes; its state still names the old feed pid
%% (no longer alive) and it receives nothing more; the new feed's subscriber
%% list is empty and its buffer grows ~100/s.
%% Root cause: the indexer depends on the feed's identity but the supervisor
%% is one_for_one, so the feed's restart leaves the indexer bound to the dead
%% feed (rest_for_one would restart the indexer after it).
-module(bug_wrong_strategy).
-behaviour(gen_server).

-export([start/0, stop/0, procs/0, trigger/0]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2, start_worker/1]).

-define(SUP, bug_wrong_strategy_sup).
-define(FEED, bug_wrong_strategy_feed).
-define(INDEXER, bug_wrong_strategy_indexer).
-define(SOURCE, bug_wrong_strategy_source).
-define(MAX_BUFFER, 10000).

start() ->
    {ok, Sup} = supervisor:start_link({local, ?SUP}, ?MODULE, sup),
    unlink(Sup),
    register(?SOURCE, spawn(fun() -> source(0) end)),
    ok.

trigger() ->
    ?SOURCE ! corrupt_next,
    ok.

stop() ->
    case whereis(?SOURCE) of
        undefined -> ok;
        P -> M = monitor(process, P), P ! stop, receive {'DOWN', M, _, _, _} -> ok end
    end,
    catch gen_server:stop(?SUP),
    ok.

procs() -> [P || N <- [?SUP, ?FEED, ?INDEXER, ?SOURCE], P <- [whereis(N)], is_pid(P)].

%% upstream: an encoded record every ~10 ms, to whichever feed is
%% registered (a record sent while the feed restarts is dropped, as by a
%% socket reader that forwards only when someone listens)
source(N) ->
    receive
        stop -> ok;
        corrupt_next ->
            deliver({record, <<131, 104, 2, 97>>}),   % truncated in transit
            source(N + 1)
    after 10 ->
        deliver({record, term_to_binary({doc, N, <<"title ", (integer_to_binary(N))/binary>>})}),
        source(N + 1)
    end.

deliver(Record) ->
    case whereis(?FEED) of
        undefined -> dropped;
        Feed -> Feed ! Record
    end.

start_worker(Name) -> gen_server:start_link({local, Name}, ?MODULE, Name, []).

init(sup) ->
    {ok, {#{strategy => one_for_one, intensity => 3, period => 5},
          [#{id => feed, start => {?MODULE, start_worker, [?FEED]}},
           #{id => indexer, start => {?MODULE, start_worker, [?INDEXER]}}]}};
init(?FEED) ->
    {ok, #{buffer => queue:new(), subscribers => #{}, decoded => 0, dropped => 0}};
init(?INDEXER) ->
    Feed = whereis(?FEED),
    ok = gen_server:call(Feed, {subscribe, self()}),
    Feed ! {ask, self(), 10},
    {ok, #{feed => Feed, indexed => 0, index => #{}}}.

%% feed
handle_call({subscribe, Pid}, _From, S = #{subscribers := Subs}) ->
    {reply, ok, S#{subscribers := Subs#{Pid => 0}}}.

handle_cast(_Msg, S) -> {noreply, S}.

handle_info({record, Bin}, S = #{buffer := B, decoded := D, dropped := X}) ->
    Doc = binary_to_term(Bin),
    B1 = queue:in(Doc, B),
    {B2, X1} = case queue:len(B1) > ?MAX_BUFFER of
                   true -> {queue:drop(B1), X + 1};
                   false -> {B1, X}
               end,
    {noreply, dispatch(S#{buffer := B2, decoded := D + 1, dropped := X1})};
handle_info({ask, Pid, N}, S = #{subscribers := Subs}) ->
    {noreply, dispatch(S#{subscribers := maps:update_with(Pid, fun(D) -> D + N end, N, Subs)})};
%% indexer: index the batch, ask the feed for as many more
handle_info({events, Docs}, S = #{feed := Feed, indexed := I, index := Idx}) ->
    Idx1 = lists:foldl(fun({doc, Id, Title}, Acc) -> Acc#{Id rem 1000 => Title} end, Idx, Docs),
    Feed ! {ask, self(), length(Docs)},
    {noreply, S#{indexed := I + length(Docs), index := Idx1}}.

dispatch(S = #{buffer := B, subscribers := Subs}) ->
    {B1, Subs1} = maps:fold(fun(Pid, Demand, {Buf, Acc}) when Demand > 0 ->
                                    {Out, Rest} = queue:split(min(Demand, queue:len(Buf)), Buf),
                                    Docs = queue:to_list(Out),
                                    Docs =/= [] andalso (Pid ! {events, Docs}),
                                    {Rest, Acc#{Pid => Demand - length(Docs)}};
                               (Pid, Demand, {Buf, Acc}) ->
                                    {Buf, Acc#{Pid => Demand}}
                            end, {B, #{}}, Subs),
    S#{buffer := B1, subscribers := Subs1}.
