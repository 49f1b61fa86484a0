%% A supervisor of many dynamic children, as Elixir's DynamicSupervisor or an
%% Erlang simple_one_for_one pool holds them: for the test that a trace of the
%% supervisor traces every child it already has, and does not wait on a
%% supervisor stuck starting one (child(block), run by the supervisor itself).
-module(mic_dynsup).
-behaviour(supervisor).

-export([start/2, child/0, child/1, init/1]).

%% Starts Name with N idle temporary children, under a holder process so the
%% supervisor outlives the rpc that started it. Returns the supervisor's pid.
start(Name, N) ->
    Self = self(),
    spawn(fun() ->
                  {ok, Sup} = supervisor:start_link({local, Name}, ?MODULE, []),
                  [{ok, _} = supervisor:start_child(Sup, []) || _ <- lists:seq(1, N)],
                  Self ! {started, Sup},
                  receive stop -> ok end
          end),
    receive {started, Sup} -> Sup after 10000 -> error(timeout) end.

child() ->
    {ok, spawn_link(fun Idle() -> receive _ -> Idle() end end)}.

child(block) ->
    receive release -> ok after 30000 -> ok end,
    child().

init([]) ->
    {ok, {#{strategy => simple_one_for_one, intensity => 5, period => 10},
          [#{id => child, start => {?MODULE, child, []}, restart => temporary}]}}.
