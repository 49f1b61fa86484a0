%% Bug: events postponed in a state the machine never leaves. The printer
%% driver (a gen_statem: ready -> printing -> ready) postpones print requests
%% while a job is printing and, after a paper jam, while `jammed`, "until the
%% printer is back". It leaves `jammed` only on {hw, ready}; the printer's
%% firmware reports {hw, online} when the jam is cleared, which the catch-all
%% for status messages ignores. So after one jam the driver stays in `jammed`
%% for good: every print request is postponed and never retried (postponed
%% events are replayed only on a state change), callers time out after 1 s,
%% and the queue of postponed requests grows with every new request.
%% Mirrors: gen_statem drivers/connections that postpone requests while
%% "busy", "reconnecting" or "syncing" and wait for one specific event to
%% leave that state (a renamed message, a timeout never armed, a reply that
%% never comes).
%% Traffic: three workstations send a print call each every 50 ms (1 s call
%% timeout); each job takes ~10 ms on the printer.
%% Trigger: a paper jam (the printer reports {hw, jam}, then {hw, online}
%% 200 ms later).
%% Evidence: the driver in state `jammed` from the jam on, the {hw, online}
%% message handled without a state change, print calls postponed and never
%% answered, the workstations' calls exiting with timeout every second, the
%% postponed list (sys:get_status) growing.
%% Root cause: print requests are postponed in `jammed`, a state the driver
%% never leaves (it waits for {hw, ready}, the printer sends {hw, online}),
%% so the postponed requests are never handled.
-module(bug_postpone_loop).
-behaviour(gen_statem).

-export([start/0, stop/0, procs/0, trigger/0]).
-export([init/1, callback_mode/0, ready/3, printing/3, jammed/3]).

-define(PRINTER, bug_postpone_loop_printer).
-define(HW, bug_postpone_loop_hw).
-define(STATIONS, [bug_postpone_loop_station_1, bug_postpone_loop_station_2,
                   bug_postpone_loop_station_3]).

start() ->
    register(?HW, proc_lib:spawn(fun() -> hardware(ok) end)),
    {ok, _} = gen_statem:start({local, ?PRINTER}, ?MODULE, [], []),
    [register(N, proc_lib:spawn(fun() -> station(N, 0, #{ok => 0, timeout => 0}) end))
     || N <- ?STATIONS],
    ok.

trigger() -> ?HW ! jam, ok.

stop() ->
    [exit(P, kill) || N <- ?STATIONS ++ [?HW], P <- [whereis(N)], is_pid(P)],
    [catch gen_statem:stop(?PRINTER) || whereis(?PRINTER) =/= undefined],
    ok.

procs() -> [P || N <- [?PRINTER, ?HW | ?STATIONS], P <- [whereis(N)], is_pid(P)].

station(Name, N, Stats) ->
    receive after 50 -> ok end,
    Key = try gen_statem:call(?PRINTER, {print, {Name, N}}, 1000) of
              ok -> ok;
              {error, _} -> error
          catch exit:{timeout, _} -> timeout
          end,
    station(Name, N + 1, maps:update_with(Key, fun(C) -> C + 1 end, 0, Stats)).

%% the printer itself: ~10 ms a page; after a jam, back online 200 ms later
hardware(Mode) ->
    receive
        jam -> hardware(jam);
        {print, _Doc} when Mode =:= jam ->
            ?PRINTER ! {hw, jam},
            erlang:send_after(200, ?PRINTER, {hw, online}),
            hardware(ok);
        {print, _Doc} ->
            erlang:send_after(10, ?PRINTER, {hw, done}),
            hardware(Mode)
    end.

callback_mode() -> state_functions.

init([]) -> {ok, ready, #{job => undefined, printed => 0, jams => 0}}.

ready({call, From}, {print, Doc}, D) ->
    ?HW ! {print, Doc},
    {next_state, printing, D#{job := From}};
ready(info, {hw, _Status}, _D) ->
    keep_state_and_data.

printing({call, _From}, {print, _Doc}, _D) ->
    {keep_state_and_data, [postpone]};
printing(info, {hw, done}, D = #{job := From, printed := P}) ->
    {next_state, ready, D#{job := undefined, printed := P + 1}, [{reply, From, ok}]};
printing(info, {hw, jam}, D = #{job := From, jams := J}) ->
    logger:warning("printer jammed, holding jobs until it is ready"),
    {next_state, jammed, D#{job := undefined, jams := J + 1}, [{reply, From, {error, jammed}}]}.

%% hold the jobs until the printer is back
jammed({call, _From}, {print, _Doc}, _D) ->
    {keep_state_and_data, [postpone]};
jammed(info, {hw, ready}, D) ->
    {next_state, ready, D};
jammed(info, {hw, _Status}, _D) ->
    keep_state_and_data.
