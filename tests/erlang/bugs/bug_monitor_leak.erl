%% Bug: monitor leak. A presence server tracks which connection is online in
%% which room. On every `join` (and every `heartbeat`, which re-joins) it
%% monitors the caller, so a connection that dies is cleaned up, and keeps
%% the newest monitor ref per connection in its state, overwriting the old
%% one without erlang:demonitor. Connections live long and heartbeat often,
%% so the server's monitors pile up: each connection is monitored hundreds of
%% times over, and each death would deliver hundreds of 'DOWN's.
%% Mirrors: Phoenix.Presence / pg-like trackers, session registries, rate
%% limiters that monitor the caller on each request "to be safe".
%% Traffic: 20 long-lived connections, each heartbeating every ~100 ms
%% (~200 monitors/s), a room switch now and then.
%% Evidence: length(process_info(bug_monitor_leak_presence, monitors)) grows
%% ~200/s while the state keeps only 20 refs; erlang:monitor is called per
%% request and erlang:demonitor never.
%% Root cause: the server calls erlang:monitor on every request from the same
%% caller and never demonitors the previous monitor.
-module(bug_monitor_leak).
-behaviour(gen_server).

-export([start/0, stop/0, procs/0]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2]).

-define(PRESENCE, bug_monitor_leak_presence).
-define(CONNS, bug_monitor_leak_conns).

start() ->
    {ok, _} = gen_server:start({local, ?PRESENCE}, ?MODULE, [], []),
    register(?CONNS, spawn(fun() ->
        process_flag(trap_exit, true),
        Conns = [spawn_link(fun() -> connection(User) end) || User <- lists:seq(1, 20)],
        receive stop -> [exit(C, shutdown) || C <- Conns] end
    end)),
    ok.

stop() ->
    case whereis(?CONNS) of
        undefined -> ok;
        C -> M = monitor(process, C), C ! stop, receive {'DOWN', M, _, _, _} -> ok end
    end,
    catch gen_server:stop(?PRESENCE),
    ok.

procs() -> [P || N <- [?PRESENCE, ?CONNS], P <- [whereis(N)], is_pid(P)].

connection(User) ->
    Room = <<"lobby">>,
    ok = gen_server:call(?PRESENCE, {join, Room, User}),
    connection(User, Room, 0).

connection(User, Room, N) ->
    timer:sleep(90 + rand:uniform(20)),
    Room1 = case N rem 40 of
                39 -> <<"room-", (integer_to_binary(rand:uniform(5)))/binary>>;
                _ -> Room
            end,
    ok = gen_server:call(?PRESENCE, {join, Room1, User}),
    connection(User, Room1, N + 1).

init([]) -> {ok, #{online => #{}, joins => 0}}.

%% join doubles as the heartbeat: refresh the entry and watch the caller
handle_call({join, Room, User}, {Pid, _}, S = #{online := O, joins := J}) ->
    Ref = erlang:monitor(process, Pid),
    Now = erlang:monotonic_time(millisecond),
    {reply, ok, S#{online := O#{Pid => {User, Room, Ref, Now}}, joins := J + 1}};
handle_call(who, _From, S = #{online := O}) ->
    {reply, [{U, R} || {U, R, _, _} <- maps:values(O)], S}.

handle_cast(_Msg, S) -> {noreply, S}.

handle_info({'DOWN', _Ref, process, Pid, _}, S = #{online := O}) ->
    {noreply, S#{online := maps:remove(Pid, O)}}.
