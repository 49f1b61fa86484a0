%% Bug: a gen_server that calls itself. The session server's public API has a
%% helper, user_of/1, that web code uses to name the user behind a token: it
%% calls validate/1, i.e. gen_server:call(bug_calling_self_sessions, ...).
%% Inside the server, the branch that renews a session past its soft expiry
%% writes an audit line, and the audit helper uses user_of/1 to name the user:
%% a gen_server:call to its own registered name from inside handle_call. OTP
%% refuses it (exit calling_self; older code deadlocked until the call timed
%% out), so the server crashes, its supervisor restarts it empty, every live
%% session is lost and every user is logged out. The branch is rare: only a
%% token older than the soft expiry (an app that slept for hours) reaches it.
%% Mirrors: a module whose callbacks reuse its own client API (Module.get/1,
%% Repo helpers, "convenience" wrappers) from inside handle_call/handle_cast,
%% usually on an error, retry or audit path.
%% Traffic: web handlers validate their tokens every 10 ms (~100 calls/s),
%% logging in again when a token is rejected.
%% Trigger: a mobile client presents a token issued two hours ago.
%% Evidence: the sessions server crashing with
%% {calling_self, {gen_server, call, [bug_calling_self_sessions, {validate, _}, 1000]}}
%% (from renew/audit/user_of inside handle_call), the mobile client's call
%% exiting with that reason, the supervisor restarting the server, the web
%% handlers' tokens rejected (invalid_token) and new logins right after.
%% Root cause: on the renewal branch the sessions server calls its own API
%% (user_of -> validate -> gen_server:call to its own name) from inside its
%% handle_call, and a gen_server cannot call itself.
-module(bug_calling_self).
-behaviour(gen_server).

-export([start/0, stop/0, procs/0, trigger/0]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2, start_sessions/0]).
-export([login/1, validate/1, user_of/1]).

-define(SUP, bug_calling_self_sup).
-define(SESSIONS, bug_calling_self_sessions).
-define(WEB, bug_calling_self_web).
-define(SOFT_EXPIRY_S, 3600).
-define(RESTORED, <<"tok-mobile-7f3a">>).

start() ->
    {ok, Sup} = supervisor:start_link({local, ?SUP}, ?MODULE, sup),
    unlink(Sup),
    register(?WEB, proc_lib:spawn(fun() -> web(#{}, 0) end)),
    ok.

%% a phone that slept for two hours wakes up with its old token
trigger() -> proc_lib:spawn(fun() -> validate(?RESTORED) end), ok.

stop() ->
    case whereis(?WEB) of undefined -> ok; W -> exit(W, kill) end,
    [catch gen_server:stop(?SUP) || whereis(?SUP) =/= undefined],
    ok.

procs() -> [P || N <- [?SUP, ?SESSIONS, ?WEB], P <- [whereis(N)], is_pid(P)].

%% client API
login(User) -> gen_server:call(?SESSIONS, {login, User}, 1000).
validate(Token) -> gen_server:call(?SESSIONS, {validate, Token}, 1000).
user_of(Token) ->
    case validate(Token) of {ok, User} -> User; _ -> anonymous end.

%% web handlers: each user checks its token, logs in again if it is rejected
web(Tokens, N) ->
    receive after 10 -> ok end,
    User = lists:nth(N rem 5 + 1, [ann, bo, cy, di, ed]),
    Tokens1 = try
                  case maps:find(User, Tokens) of
                      {ok, Token} ->
                          case validate(Token) of
                              {ok, User} -> Tokens;
                              {error, invalid_token} -> {ok, T} = login(User), Tokens#{User => T}
                          end;
                      error -> {ok, T} = login(User), Tokens#{User => T}
                  end
              catch exit:_ -> Tokens      % a 503 for this request
              end,
    web(Tokens1, N + 1).

start_sessions() -> gen_server:start_link({local, ?SESSIONS}, ?MODULE, [], []).

init(sup) ->
    {ok, {#{strategy => one_for_one, intensity => 5, period => 10},
          [#{id => sessions, start => {?MODULE, start_sessions, []}}]}};
init([]) ->
    %% sessions restored from the last snapshot: one issued two hours ago
    Now = erlang:system_time(second),
    {ok, #{sessions => #{?RESTORED => {dan, Now - 7200}}, audit => []}}.

handle_call({login, User}, _From, S = #{sessions := Ss}) ->
    Token = list_to_binary(io_lib:format("tok-~s-~b", [User, erlang:unique_integer([positive])])),
    {reply, {ok, Token}, S#{sessions := Ss#{Token => {User, erlang:system_time(second)}}}};
handle_call({validate, Token}, _From, S = #{sessions := Ss}) ->
    Now = erlang:system_time(second),
    case maps:find(Token, Ss) of
        {ok, {User, Issued}} when Now - Issued < ?SOFT_EXPIRY_S ->
            {reply, {ok, User}, S};
        {ok, {User, _Issued}} ->
            %% past the soft expiry: renew, and leave an audit trail
            S1 = audit(renewed, Token, S),
            {reply, {ok, User}, S1#{sessions := Ss#{Token => {User, Now}}}};
        error ->
            {reply, {error, invalid_token}, S}
    end.

handle_cast(_Msg, S) -> {noreply, S}.

handle_info(_Msg, S) -> {noreply, S}.

audit(Event, Token, S = #{audit := A}) ->
    S#{audit := [{Event, user_of(Token), erlang:system_time(second)} | lists:sublist(A, 99)]}.
