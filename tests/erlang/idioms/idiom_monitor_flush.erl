%% Idiom: monitors held for the length of a relationship and dropped with
%% erlang:demonitor(Ref, [flush]). A lease manager hands out leases and
%% monitors each holder so a holder that dies frees its lease; a holder that
%% releases (cast) gets its monitor dropped with flush, because the holder
%% usually exits right after releasing and its DOWN may already be queued.
%% Mirrors: a connection checkout / lock manager / rate-limit slot (the
%% pattern inside poolboy, DBConnection.Ownership, :global locks).
%% Traffic: a short-lived holder every 2 ms (~500/s): acquire (call), a bit of
%% work, release (cast), exit normal.
-module(idiom_monitor_flush).
-behaviour(gen_server).

-export([start/0, stop/0, procs/0]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2]).

-define(LEASES, idiom_monitor_flush_leases).
-define(LOAD, idiom_monitor_flush_load).

start() ->
    {ok, _} = gen_server:start({local, ?LEASES}, ?MODULE, [], []),
    register(?LOAD, spawn(fun() -> spawner(0) end)),
    ok.

stop() ->
    M = monitor(process, ?LOAD), ?LOAD ! stop,
    receive {'DOWN', M, _, _, _} -> ok end,
    gen_server:stop(?LEASES).

procs() -> [P || N <- [?LEASES, ?LOAD], P <- [whereis(N)], is_pid(P)].

spawner(N) ->
    receive stop -> ok
    after 2 -> spawn(fun() -> holder(N) end), spawner(N + 1)
    end.

holder(N) ->
    {ok, Lease} = gen_server:call(?LEASES, {acquire, N rem 16}),
    _ = erlang:phash2({N, Lease}),
    gen_server:cast(?LEASES, {release, Lease}).

init([]) -> {ok, #{leases => #{}, issued => 0, freed_by_down => 0}}.

handle_call({acquire, Resource}, {Pid, _}, S = #{leases := L, issued := I}) ->
    Ref = erlang:monitor(process, Pid),
    {reply, {ok, Ref}, S#{leases := L#{Ref => {Resource, Pid}}, issued := I + 1}}.

handle_cast({release, Ref}, S = #{leases := L}) ->
    erlang:demonitor(Ref, [flush]),
    {noreply, S#{leases := maps:remove(Ref, L)}}.

handle_info({'DOWN', Ref, process, _, _}, S = #{leases := L, freed_by_down := F}) ->
    %% a holder that died holding its lease
    {noreply, S#{leases := maps:remove(Ref, L), freed_by_down := F + 1}}.
