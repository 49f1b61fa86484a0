%% Idiom: a unique registry over ETS used through {via, Module, Key} names,
%% with a simple_one_for_one supervisor of temporary sessions (Registry +
%% DynamicSupervisor). The registry server monitors every registered pid and
%% drops its entry on DOWN; lookups read ETS in the caller.
%% Mirrors: one process per chat conversation / game / device, started on
%% demand under a DynamicSupervisor and addressed by {:via, Registry, key}.
%% Sessions end normal when the conversation is done, or shutdown when the
%% router cancels it; keys are never reused.
%% Traffic: a router keeping 20 conversations open, 5 events each, one event
%% every ms (~1000 casts/s, ~200 sessions/s).
-module(idiom_registry).
-behaviour(gen_server).

-export([start/0, stop/0, procs/0]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2]).
-export([register_name/2, unregister_name/1, whereis_name/1, send/2, start_session/1, router/0]).

-define(REG, idiom_registry_names).
-define(SUP, idiom_registry_sessions).
-define(ROUTER, idiom_registry_router).

start() ->
    {ok, _} = gen_server:start({local, ?REG}, ?MODULE, registry, []),
    {ok, Sup} = supervisor:start_link({local, ?SUP}, ?MODULE, sessions),
    unlink(Sup),
    register(?ROUTER, proc_lib:spawn(?MODULE, router, [])),
    ok.

stop() ->
    M = monitor(process, ?ROUTER), ?ROUTER ! stop,
    receive {'DOWN', M, _, _, _} -> ok end,
    gen_server:stop(?SUP), gen_server:stop(?REG).

procs() -> [P || N <- [?REG, ?SUP, ?ROUTER], P <- [whereis(N)], is_pid(P)].

%% the {via, ?MODULE, Key} callbacks
register_name(Key, Pid) -> gen_server:call(?REG, {register, Key, Pid}).
unregister_name(Key) -> gen_server:call(?REG, {unregister, Key}).
whereis_name(Key) ->
    case ets:lookup(?REG, Key) of [{_, Pid}] -> Pid; [] -> undefined end.
send(Key, Msg) ->
    case whereis_name(Key) of
        undefined -> exit({badarg, {Key, Msg}});
        Pid -> Pid ! Msg, Pid
    end.

start_session(Key) -> gen_server:start_link({via, ?MODULE, Key}, ?MODULE, {session, Key}, []).

init(registry) ->
    ets:new(?REG, [named_table, protected, set, {read_concurrency, true}]),
    {ok, #{}};
init({session, Key}) -> {ok, #{key => Key, events => []}};
init(sessions) ->
    {ok, {#{strategy => simple_one_for_one},
          [#{id => session, start => {?MODULE, start_session, []}, restart => temporary}]}}.

handle_call({register, Key, Pid}, _From, Mons) ->
    case ets:insert_new(?REG, {Key, Pid}) of
        true -> {reply, yes, Mons#{erlang:monitor(process, Pid) => Key}};
        false -> {reply, no, Mons}
    end;
handle_call({unregister, Key}, _From, Mons) ->
    ets:delete(?REG, Key), {reply, ok, Mons}.

handle_cast({event, E}, S = #{events := Es}) -> {noreply, S#{events := [E | Es]}};
handle_cast(done, S) -> {stop, normal, S};
handle_cast(cancel, S) -> {stop, shutdown, S}.

handle_info({'DOWN', Ref, process, _, _}, Mons) ->
    {Key, Mons1} = maps:take(Ref, Mons),
    ets:delete(?REG, Key),
    {noreply, Mons1}.

%% the router: 20 open conversations, an event every ms, 5 events each
router() -> route(1, queue:new()).

route(Next, Open) ->
    receive stop -> ok
    after 1 ->
        {Open1, Next1} = case queue:len(Open) < 20 of
                             true ->
                                 {ok, _} = supervisor:start_child(?SUP, [Next]),
                                 {queue:in({Next, 5}, Open), Next + 1};
                             false -> {Open, Next}
                         end,
        {{value, {Key, Left}}, Rest} = queue:out(Open1),
        gen_server:cast({via, ?MODULE, Key}, {event, Left}),
        case Left of
            1 when Key rem 4 =:= 0 -> gen_server:cast({via, ?MODULE, Key}, cancel), route(Next1, Rest);
            1 -> gen_server:cast({via, ?MODULE, Key}, done), route(Next1, Rest);
            _ -> route(Next1, queue:in({Key, Left - 1}, Rest))
        end
    end.
