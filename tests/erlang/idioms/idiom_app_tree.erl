%% Idiom: a real OTP application (loaded from an in-memory .app spec, started
%% with application:start) whose supervision tree is 3 levels deep:
%%   top (one_for_one)
%%   +- ingest_sup (rest_for_one): buffer, flusher
%%   +- query_sup (one_for_all): index, searcher
%%   +- generator (the app's own traffic source)
%% The flusher pulls from the buffer every 20 ms and feeds the index; the
%% searcher serves lookups against the index.
%% Mirrors: any `mix new --sup` / rebar3 app: Application.start -> a tree of
%% supervisors grouping workers by how they must restart together.
%% Traffic: ~800 ingests/s, a pull every 20 ms, ~250 searches/s.
-module(idiom_app_tree).
-behaviour(application).
-behaviour(supervisor).

-export([start/0, stop/0, procs/0]).
-export([start/2, stop/1, init/1, start_worker/1, worker_init/1, generator/0]).

-define(APP, idiom_app_tree).
-define(NAMES, [idiom_app_tree_top, idiom_app_tree_ingest_sup, idiom_app_tree_query_sup,
                idiom_app_tree_buffer, idiom_app_tree_flusher, idiom_app_tree_index,
                idiom_app_tree_searcher, idiom_app_tree_generator]).

start() ->
    ok = application:load({application, ?APP,
                           [{description, "healthy-idiom app tree"}, {vsn, "1.0.0"},
                            {modules, [?MODULE]}, {registered, ?NAMES},
                            {applications, [kernel, stdlib]}, {mod, {?MODULE, []}}]}),
    ok = application:start(?APP).

stop() -> ok = application:stop(?APP), ok = application:unload(?APP).

procs() -> [P || N <- ?NAMES, P <- [whereis(N)], is_pid(P)].

%% application
start(normal, []) -> supervisor:start_link({local, idiom_app_tree_top}, ?MODULE, top).
stop(_State) -> ok.

%% supervisors
init(top) ->
    {ok, {#{strategy => one_for_one},
          [sup(idiom_app_tree_ingest_sup, ingest), sup(idiom_app_tree_query_sup, query),
           #{id => generator, start => {proc_lib, start_link, [?MODULE, generator, []]}}]}};
init(ingest) ->
    {ok, {#{strategy => rest_for_one}, [worker(idiom_app_tree_buffer), worker(idiom_app_tree_flusher)]}};
init(query) ->
    {ok, {#{strategy => one_for_all}, [worker(idiom_app_tree_index), worker(idiom_app_tree_searcher)]}}.

sup(Name, Arg) ->
    #{id => Name, start => {supervisor, start_link, [{local, Name}, ?MODULE, Arg]}, type => supervisor}.
worker(Name) -> #{id => Name, start => {?MODULE, start_worker, [Name]}}.

%% workers: proc_lib processes (init_ack) with plain receive loops and
%% explicit replies, as many app workers are
start_worker(Name) -> proc_lib:start_link(?MODULE, worker_init, [Name]).

worker_init(Name) ->
    register(Name, self()),
    proc_lib:init_ack({ok, self()}),
    Name =:= idiom_app_tree_flusher andalso erlang:send_after(20, self(), pull),
    worker(Name, []).

worker(idiom_app_tree_buffer = N, Items) ->
    receive
        {ingest, Item} -> worker(N, [Item | Items]);
        {pull, From, Ref} -> From ! {Ref, lists:reverse(Items)}, worker(N, [])
    end;
worker(idiom_app_tree_flusher = N, S) ->
    receive
        pull ->
            erlang:send_after(20, self(), pull),
            Ref = make_ref(),
            idiom_app_tree_buffer ! {pull, self(), Ref},
            receive {Ref, Items} -> idiom_app_tree_index ! {add, Items} end,
            worker(N, S)
    end;
worker(idiom_app_tree_index = N, Index) ->
    receive
        {add, Items} -> worker(N, lists:sublist(Items ++ Index, 200));
        {lookup, From, Ref, K} -> From ! {Ref, lists:member(K, Index)}, worker(N, Index)
    end;
worker(idiom_app_tree_searcher = N, S) ->
    receive
        {search, From, Ref, K} ->
            R = make_ref(),
            idiom_app_tree_index ! {lookup, self(), R, K},
            receive {R, Found} -> From ! {Ref, Found} end,
            worker(N, S)
    end.

generator() ->
    register(idiom_app_tree_generator, self()),
    proc_lib:init_ack({ok, self()}),
    generate(0).

generate(N) ->
    receive after 5 -> ok end,
    [idiom_app_tree_buffer ! {ingest, N + K} || K <- [1, 2, 3, 4]],
    Ref = make_ref(),
    idiom_app_tree_searcher ! {search, self(), Ref, N rem 300},
    receive {Ref, _Found} -> ok end,
    generate(N + 4).
