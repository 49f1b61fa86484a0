%% Bug: assuming order between messages from two different senders. The
%% search indexer learns about a new document from the writer, which casts
%% {created, Id, Doc} after persisting it (~5 ms), and about edits straight
%% from the editor, which casts {updated, Id, Patch}. Erlang orders messages
%% only per sender pair; nothing orders the writer's `created` before the
%% editor's `updated`. A user who edits a document right after creating it
%% makes the update reach the indexer first: the indexer's
%% maps:get(Id, Docs) fails with {badkey, Id}, it crashes (its supervisor
%% restarts it and it reloads the index from the store) and the edit is lost
%% from the index.
%% Mirrors: a consumer fed by two producers (a DB writer and an API process,
%% a PubSub broadcast and a direct send, two GenServers notifying a
%% projection) that assumes "create" always comes before "update".
%% Traffic: the editor creates a document through the writer every 25 ms and
%% edits one created a while ago, straight to the indexer (~80 msgs/s).
%% Trigger: a user creates three documents and edits each 2 ms after
%% creating it (300 ms apart).
%% Evidence: the indexer receiving {updated, Id, _} for an Id it has never
%% seen, crashing with {badkey, Id} (crash report, supervisor restart), the
%% writer's {created, Id, _} for that Id arriving ~5 ms later; three times.
%% Root cause: the indexer assumes the writer's `created` arrives before the
%% editor's `updated`, but messages from different senders have no order, so
%% the update arrives first and the indexer crashes on the unknown document.
-module(bug_sender_ordering).
-behaviour(gen_server).

-export([start/0, stop/0, procs/0, trigger/0]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2, start_server/1]).

-define(SUP, bug_sender_ordering_sup).
-define(WRITER, bug_sender_ordering_writer).
-define(INDEXER, bug_sender_ordering_indexer).
-define(EDITOR, bug_sender_ordering_editor).
-define(STORE, bug_sender_ordering_store).

start() ->
    {ok, Sup} = supervisor:start_link({local, ?SUP}, ?MODULE, sup),
    unlink(Sup),
    register(?EDITOR, proc_lib:spawn(fun() -> editor(1) end)),
    ok.

trigger() ->
    proc_lib:spawn(fun() ->
        [begin
             Id = {quick, K},
             gen_server:cast(?WRITER, {create, Id, #{title => <<"Draft">>, body => <<>>}}),
             timer:sleep(2),
             gen_server:cast(?INDEXER, {updated, Id, #{title => <<"Q3 plan">>}}),
             timer:sleep(300)
         end || K <- [1, 2, 3]]
    end),
    ok.

stop() ->
    case whereis(?EDITOR) of undefined -> ok; E -> exit(E, kill) end,
    [catch gen_server:stop(?SUP) || whereis(?SUP) =/= undefined],
    ok.

procs() -> [P || N <- [?SUP, ?WRITER, ?INDEXER, ?EDITOR], P <- [whereis(N)], is_pid(P)].

%% the app's own users: create, and edit documents created earlier
editor(N) ->
    receive after 25 -> ok end,
    gen_server:cast(?WRITER, {create, N, #{title => <<"Doc">>, body => <<"...">>}}),
    N > 10 andalso gen_server:cast(?INDEXER, {updated, N - 10, #{body => <<"edited">>}}),
    editor(N + 1).

start_server(Name) -> gen_server:start_link({local, Name}, ?MODULE, Name, []).

init(sup) ->
    {ok, {#{strategy => rest_for_one, intensity => 10, period => 5},
          [#{id => N, start => {?MODULE, start_server, [N]}} || N <- [?WRITER, ?INDEXER]]}};
init(?WRITER) ->
    ets:new(?STORE, [named_table, protected, set]),
    {ok, #{}};
init(?INDEXER) ->
    %% (re)build the index from the store
    {ok, #{docs => maps:from_list(ets:tab2list(?STORE))}}.

handle_call(_Req, _From, S) -> {reply, ok, S}.

%% writer: persist, then tell the indexer
handle_cast({create, Id, Doc}, S) ->
    timer:sleep(5),
    ets:insert(?STORE, {Id, Doc}),
    gen_server:cast(?INDEXER, {created, Id, Doc}),
    {noreply, S};
%% indexer
handle_cast({created, Id, Doc}, S = #{docs := Docs}) ->
    {noreply, S#{docs := Docs#{Id => Doc}}};
handle_cast({updated, Id, Patch}, S = #{docs := Docs}) ->
    Doc = maps:get(Id, Docs),
    {noreply, S#{docs := Docs#{Id := maps:merge(Doc, Patch)}}}.

handle_info(_Msg, S) -> {noreply, S}.
