%% Bug: a slow consumer behind casts. The audit writer handles every audit
%% event in handle_cast with a synchronous write to the audit store (~15 ms
%% each: a blocking remote insert), so it can take at most ~65 events/s. At
%% ordinary load (~30 events/s) it keeps up; when a checkout rush raises the
%% rate to ~120 events/s its mailbox grows by ~55 messages every second and
%% never drains: nothing pushes back on the senders, who cast and move on.
%% Mirrors: a logger/audit/metrics gen_server fed by gen_server:cast from
%% every request handler, writing each event synchronously (a DB insert, an
%% HTTP call, file:write + datasync) instead of batching or applying
%% backpressure.
%% Traffic: the API process casts an audit event every ~33 ms; from the
%% trigger on, every ~8 ms.
%% Trigger: the rush (the API's event rate x4).
%% Evidence: the writer's message_queue_len rising steadily (tens per
%% second), the writer busy all the time in its handle_cast, each event
%% taking ~15 ms, the API never blocked.
%% Root cause: events arrive faster than the writer's per-event synchronous
%% write can handle them, and casts give no backpressure, so the backlog
%% grows without bound.
-module(bug_slow_backlog).
-behaviour(gen_server).

-export([start/0, stop/0, procs/0, trigger/0]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2]).

-define(WRITER, bug_slow_backlog_writer).
-define(API, bug_slow_backlog_api).

start() ->
    {ok, _} = gen_server:start({local, ?WRITER}, ?MODULE, writer, []),
    {ok, _} = gen_server:start({local, ?API}, ?MODULE, api, []),
    ok.

trigger() -> gen_server:cast(?API, {rate, 8}), ok.

stop() ->
    [catch gen_server:stop(N) || N <- [?API], whereis(N) =/= undefined],
    %% the writer may have a long backlog: don't wait for it
    case whereis(?WRITER) of undefined -> ok; W -> exit(W, kill) end,
    ok.

procs() -> [P || N <- [?WRITER, ?API], P <- [whereis(N)], is_pid(P)].

init(writer) ->
    {ok, #{written => 0}};
init(api) ->
    erlang:send_after(33, self(), request),
    {ok, #{every => 33, seq => 0}}.

handle_call(_Req, _From, S) -> {reply, ok, S}.

%% writer: one synchronous insert per event
handle_cast({audit, Event}, S = #{written := N}) ->
    ok = write_to_audit_store(Event),
    {noreply, S#{written := N + 1}};
%% api
handle_cast({rate, Ms}, S) ->
    {noreply, S#{every := Ms}}.

handle_info(request, S = #{every := Ms, seq := Seq}) ->
    erlang:send_after(Ms, self(), request),
    User = Seq rem 97,
    gen_server:cast(?WRITER, {audit, #{seq => Seq, user => User, action => checkout,
                                       at => erlang:system_time(millisecond)}}),
    {noreply, S#{seq := Seq + 1}}.

%% a blocking round trip to the audit store (~15 ms)
write_to_audit_store(Event) ->
    _Row = term_to_binary(Event),
    receive after 15 -> ok end.
