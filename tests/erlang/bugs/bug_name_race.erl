%% Bug: check-then-act on a registered name. Each tenant has a session server
%% registered as bug_name_race_session_<tenant>, started lazily by the first
%% request for that tenant: `case whereis(Name) of undefined -> load the
%% tenant's config, {ok, Pid} = gen_server:start({local, Name}, ...)`. The
%% check and the start are not atomic, and the config load between them
%% takes a few ms: when a new tenant's first requests arrive together, every
%% handler sees `undefined`, one wins the registration, and the others get
%% {error, {already_started, Pid}} and crash on the badmatch; those requests
%% fail.
%% Mirrors: lazily started per-user/per-room/per-tenant processes with
%% whereis/Registry.lookup then start (or register/2 after spawn, or
%% :global.whereis_name then register), instead of starting through one
%% serialising process or treating already_started as success.
%% Traffic: a request handler process every 10 ms (~100/s) for the three
%% existing tenants.
%% Trigger: a new tenant's first six requests, arriving at once.
%% Evidence: six handlers calling whereis(bug_name_race_session_umbrella) ->
%% undefined, then the config server; one gen_server:start registers the
%% name, the others return {error, {already_started, <pid>}} and their
%% handlers crash with {badmatch, {error, {already_started, _}}}.
%% Root cause: the session is started after a separate whereis check (with a
%% config load in between), so concurrent first requests race to register
%% the same name and all but one crash.
-module(bug_name_race).
-behaviour(gen_server).

-export([start/0, stop/0, procs/0, trigger/0]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2]).

-define(CONFIG, bug_name_race_config).
-define(FRONTEND, bug_name_race_frontend).
-define(TENANTS, ["acme", "globex", "initech"]).
-define(NEW_TENANT, "umbrella").

start() ->
    {ok, _} = gen_server:start({local, ?CONFIG}, ?MODULE, config, []),
    [session(T) || T <- ?TENANTS],
    register(?FRONTEND, proc_lib:spawn(fun() -> frontend(0) end)),
    ok.

%% The first requests for a new tenant arrive together at the frontend.
trigger() ->
    ?FRONTEND ! {burst, ?NEW_TENANT, 6},
    ok.

stop() ->
    case whereis(?FRONTEND) of undefined -> ok; F -> exit(F, kill) end,
    [catch gen_server:stop(N) || N <- [?CONFIG | sessions()], whereis(N) =/= undefined],
    ok.

procs() -> [P || N <- [?CONFIG, ?FRONTEND | sessions()], P <- [whereis(N)], is_pid(P)].

sessions() -> [session_name(T) || T <- [?NEW_TENANT | ?TENANTS]].

session_name(Tenant) -> list_to_atom("bug_name_race_session_" ++ Tenant).

%% the tenant's session, started on first use
session(Tenant) ->
    Name = session_name(Tenant),
    case whereis(Name) of
        undefined ->
            {ok, Config} = gen_server:call(?CONFIG, {load, Tenant}),
            {ok, Pid} = gen_server:start({local, Name}, ?MODULE, {session, Tenant, Config}, []),
            Pid;
        Pid ->
            Pid
    end.

handle_request(Tenant, Key) ->
    {ok, _} = gen_server:call(session(Tenant), {get, Key}).

frontend(N) ->
    receive
        {burst, New, Count} ->
            [proc_lib:spawn(fun() -> handle_request(New, K) end) || K <- lists:seq(1, Count)]
    after 10 ->
        Tenant = lists:nth(N rem 3 + 1, ?TENANTS),
        proc_lib:spawn(fun() -> handle_request(Tenant, N rem 20) end)
    end,
    frontend(N + 1).

init(config) -> {ok, #{loads => 0}};
init({session, Tenant, Config}) -> {ok, #{tenant => Tenant, config => Config, hits => 0}}.

%% config: the tenant's settings, read from the database (~5 ms)
handle_call({load, Tenant}, _From, S = #{loads := L}) ->
    timer:sleep(5),
    {reply, {ok, #{tenant => Tenant, plan => pro, quota => 1000}}, S#{loads := L + 1}};
%% session
handle_call({get, Key}, _From, S = #{hits := H, config := #{quota := Q}}) ->
    {reply, {ok, {Key, Q}}, S#{hits := H + 1}}.

handle_cast(_Msg, S) -> {noreply, S}.

handle_info(_Msg, S) -> {noreply, S}.
