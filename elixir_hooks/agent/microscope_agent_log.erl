%%% @doc The node's own log as events: a logger handler (OTP's
%%% logger:add_handler/3) that forwards each log event to a trace's tracer,
%%% which writes it as a `log' row (microscope_agent_events).
%%%
%%% ```
%%%   Id = microscope_agent_setup:log_handler_add(Tracer, Opts)   % one of ours, or none
%%%   ... logger:error("sent ~p, table says ~p", [X, Y]) anywhere on the node:
%%%   Tracer ! {microscope_log, Pid, Ts, Level, MFA, Peer, Text, Summary}
%%%   microscope_agent_setup:log_handler_remove(Id, Tracer)       % at cleanup
%%% '''
%%%
%%% log/2 runs inside the process that logs, so it is small and can neither
%%% block nor fail: it formats the message (report_cb and all, as logger's
%%% own formatter does, bounded to payload_limit characters), picks out what
%%% analysis reads (the domain, a report's label, a supervisor report's
%%% context, reason and child) and sends one message; everything is caught,
%%% since logger removes a handler that raises. The send is recognised as
%%% agent traffic by its tag, so a traced process that logs shows no send.
%%% Our own processes' log events are left out, and a handler whose tracer
%%% is gone (its controller was killed) has itself removed at the next event
%%% (also swept at the next start and at unload: setup's log_handler_sweep/0).
%%% Adding and removing the handler is microscope_agent_setup's.
-module(microscope_agent_log).
-include("microscope_agent.hrl").

%% @private logger's handler callback
-export([log/2]).

%% A reason, a supervisor's name or a child id is kept beside the text
%% when it is this small (words): the text has the rest.
-define(SMALL_TERM_WORDS, 64).

log(Event, #{id := Id, config := #{tracer := Tracer, limit := Limit}}) ->
    try forward(Event, Id, Tracer, Limit)
    catch _:_ -> ok
    end,
    ok;
log(_, _) ->
    ok.

forward(#{level := Level, msg := Msg, meta := Meta} = Event, Id, Tracer, Limit) ->
    case is_process_alive(Tracer) of
        false ->
            %% Its trace was killed before its cleanup. Removed from a fresh
            %% process (a call into logger from one of its handlers may wait
            %% on itself), and only while the id is still this tracer's.
            spawn(microscope_agent_setup, log_handler_remove, [Id, Tracer]);
        true ->
            Pid = case maps:get(pid, Meta, self()) of
                      P when is_pid(P) -> P;
                      _ -> self()
                  end,
            case ours() of
                true -> ok;
                false ->
                    Ts = erlang:monotonic_time(),
                    Summary = summary(Msg, Meta),
                    Tracer ! {microscope_log, Pid, Ts, Level, mfa(Meta), peer(Summary),
                              text(Event, Limit), maps:remove(child, Summary)}
            end
    end.

%% The agent's own processes (controller, tracer, sampler, ring) never log
%% into a trace.
ours() ->
    case erlang:process_info(self(), initial_call) of
        {initial_call, {M, init, _}} -> lists:member(M, microscope_agent:modules());
        _ -> false
    end.

%% The message as logger's formatter writes it on one line, report_cb
%% applied; chars_limit bounds the work, not only the result.
text(Event, Limit) ->
    Formatted = logger_formatter:format(Event, #{template => [msg], single_line => true,
                                                 chars_limit => Limit, max_size => Limit}),
    case unicode:characters_to_binary(Formatted) of
        Bin when is_binary(Bin) -> Bin;
        _ -> iolist_to_binary(io_lib:format("~tp", [Formatted]))
    end.

mfa(#{mfa := {M, F, A}}) when is_atom(M), is_atom(F), is_integer(A) -> {M, F, A};
mfa(_) -> none.

%% A supervisor report's child is the row's peer.
peer(#{child := P}) when is_pid(P) -> P;
peer(_) -> none.

summary(Msg, Meta) ->
    Base = maps:with([domain, file, line], Meta),
    maps:merge(Base, report(Msg)).

report({report, #{label := {supervisor, _} = Label, report := R}}) when is_list(R) ->
    Offender = proplist(offender, R, []),
    small(#{label => Label,
            supervisor => proplist(supervisor, R, undefined),
            context => proplist(errorContext, R, undefined),
            reason => proplist(reason, R, undefined),
            child_id => offender(id, Offender),
            child => offender(pid, Offender)});
report({report, #{label := {proc_lib, crash} = Label, report := [Crasher | _]}})
  when is_list(Crasher) ->
    Reason = case proplist(error_info, Crasher, undefined) of
                 {_Class, Why, _Stack} -> Why;
                 _ -> undefined
             end,
    small(#{label => Label, reason => Reason});
report({report, #{label := Label} = R}) ->
    small(#{label => Label, reason => maps:get(reason, R, undefined)});
report(_) ->
    #{}.

proplist(Key, List, Default) ->
    case lists:keyfind(Key, 1, List) of
        {Key, Value} -> Value;
        false -> Default
    end.

offender(Key, Offender) when is_list(Offender) -> proplist(Key, Offender, undefined);
offender(Key, Offender) when is_map(Offender) -> maps:get(Key, Offender, undefined);
offender(_, _) -> undefined.

small(Map) ->
    maps:filter(fun(_, undefined) -> false;
                   (_, V) -> erts_debug:flat_size(V) =< ?SMALL_TERM_WORDS
                end, Map).
