%% Bug: atom table growth. A metrics ingest server parses StatsD-like lines
%% sent by clients ("checkout.latency_ms:42|ms|#region:eu,build:7f3a") and,
%% to get "nice" keys, converts the metric name and every tag key and value
%% with binary_to_atom/2 (list_to_atom in older code). Tag values come from
%% the clients: request ids, build hashes, user ids. Atoms are never garbage
%% collected, so each new value adds a permanent entry to the atom table; at
%% the limit (1 048 576 by default) the whole node crashes.
%% Mirrors: parsers that do String.to_atom / binary_to_atom on external
%% input: JSON decoding with `keys: :atoms`, config or header parsing,
%% metric/tag names, protocol message types taken from the wire.
%% Traffic: ~200 metric lines/s from a few clients; each line has a
%% per-request tag value.
%% Evidence: erlang:system_info(atom_count) grows ~200/s and never comes back
%% down; bug_atom_growth_ingest calls erlang:binary_to_atom/2 on every line;
%% its aggregate map is keyed by ever-new atoms.
%% Root cause: the server turns client-supplied strings into atoms, and atoms
%% are never freed, so the atom table grows with every new value.
-module(bug_atom_growth).
-behaviour(gen_server).

-export([start/0, stop/0, procs/0]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2]).

-define(INGEST, bug_atom_growth_ingest).
-define(CLIENTS, bug_atom_growth_clients).

start() ->
    {ok, _} = gen_server:start({local, ?INGEST}, ?MODULE, [], []),
    register(?CLIENTS, spawn(fun() ->
        process_flag(trap_exit, true),
        Cs = [spawn_link(fun() -> client(Service, 0) end)
              || Service <- [<<"checkout">>, <<"search">>, <<"auth">>, <<"cart">>]],
        receive stop -> [exit(C, shutdown) || C <- Cs] end
    end)),
    ok.

stop() ->
    case whereis(?CLIENTS) of
        undefined -> ok;
        C -> M = monitor(process, C), C ! stop, receive {'DOWN', M, _, _, _} -> ok end
    end,
    catch gen_server:stop(?INGEST),
    ok.

procs() -> [P || N <- [?INGEST, ?CLIENTS], P <- [whereis(N)], is_pid(P)].

%% a service reporting its request latency, tagged with the request id
client(Service, N) ->
    timer:sleep(20),
    ReqId = integer_to_binary(erlang:phash2({Service, N}, 1 bsl 32), 16),
    Line = <<Service/binary, ".latency_ms:", (integer_to_binary(5 + N rem 90))/binary,
             "|ms|#region:eu-west,req:", ReqId/binary>>,
    gen_server:cast(?INGEST, {line, Line}),
    client(Service, N + 1).

init([]) -> {ok, #{aggregates => #{}, lines => 0}}.

handle_call(aggregates, _From, S = #{aggregates := A}) -> {reply, A, S}.

handle_cast({line, Line}, S = #{aggregates := A, lines := L}) ->
    {Name, Value, Type, Tags} = parse(Line),
    Key = {Name, Type, lists:sort(Tags)},
    {noreply, S#{aggregates := maps:update_with(Key, fun(V) -> V + Value end, Value, A),
                 lines := L + 1}}.

handle_info(_Msg, S) -> {noreply, S}.

%% "name:value|type|#k:v,k:v"
parse(Line) ->
    [NameValue, Type | Rest] = binary:split(Line, <<"|">>, [global]),
    [Name, Value] = binary:split(NameValue, <<":">>),
    Tags = case Rest of
               [<<"#", TagList/binary>>] ->
                   [begin
                        [K, V] = binary:split(Tag, <<":">>),
                        {binary_to_atom(K, utf8), binary_to_atom(V, utf8)}
                    end || Tag <- binary:split(TagList, <<",">>, [global])];
               [] -> []
           end,
    {binary_to_atom(Name, utf8), binary_to_integer(Value), binary_to_atom(Type, utf8), Tags}.
