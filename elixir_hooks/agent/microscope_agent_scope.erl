%%% @doc What a trace may touch, decided before it touches anything: its
%%% options (defaults/0, and the limits every one must keep), the processes
%%% and functions it names, and what it refuses.
%%%
%%% ```
%%%   Opts = maps:merge(defaults(), Asked),
%%%   {ok, Procs, Patterns, Swept} | {error, Why} = validate(Caller, Opts)
%%%   {error, {dangerous, {whole_module, lists}}}   % modules => [{<<"lists">>, '_', '_'}]
%%%   {error, {no_such_process, <<"Nope">>}}        % and no atom 'Nope' was made
%%% '''
%%%
%%% Names come in as binaries and are resolved only to atoms the node
%%% already has (a module's atom also when its .beam is on the code path, a
%%% bounded set): input never creates an atom. A supervisor stands for its
%%% subtree; an everything-trace leaves out kernel and stdlib processes and
%%% the agent's own. Whole-module patterns on what every process runs
%%% (lists, io, gen_server, ...) and any pattern on the agent itself are
%%% refused with a named reason. Python declares the same options and
%%% ceilings (microscope_jupyter/agent/options.py; a unit test compares).
-module(microscope_agent_scope).
-include("microscope_agent.hrl").

-export([defaults/0, validate/2, resolve_procs/2, resolve_pattern/1, existing_atom/1]).

%% The most payload_limit may be (options.py holds the same ceiling).
-define(MAX_PAYLOAD_LIMIT, 65536).
-define(CHILDREN_WAIT_MS, 2000).   % per supervisor asked for its children

defaults() ->
    #{procs => all, modules => [], messages => true, lifecycle => true,
      state => true, gc => false, max_events => 1000000, max_rate => 200000,
      duration_ms => infinity, payload_limit => 4096, batch_events => 2000,
      flush_ms => 50, shed_queue => 50000, max_queue => 500000, exclude => [],
      system_monitor => auto, long_gc_ms => 50, long_schedule_ms => 50,
      large_heap_words => 1000000, mailbox_ms => 100, sample => 1, adaptive => true,
      lines => true, logs => true}.

%% Caller (the rpc that starts the trace) and the controller itself are
%% never traced. Call patterns a killed trace of ours left on these
%% functions are swept first (Swept: how many); before OTP 27 a pattern
%% another tool holds is refused rather than overwritten.
validate(Caller, Opts) ->
    try
        check_limits(Opts),
        Procs = resolve_procs(maps:get(procs, Opts), [Caller | maps:get(exclude, Opts)]),
        Patterns = lists:usort(lists:flatmap(fun resolve_pattern/1, maps:get(modules, Opts))),
        Swept = microscope_agent_setup:sweep_orphans(Patterns),
        microscope_agent_setup:has_sessions()
            orelse microscope_agent_setup:check_patterns_free(Patterns),
        {ok, Procs, Patterns, Swept}
    catch
        throw:{refused, Why} -> {error, Why}
    end.

check_limits(Opts) ->
    [throw({refused, {bad_limit, K, maps:get(K, Opts)}})
     || K <- [max_events, max_rate, payload_limit, batch_events, flush_ms,
              shed_queue, max_queue, long_gc_ms, long_schedule_ms, large_heap_words,
              mailbox_ms, sample],
        not (is_integer(maps:get(K, Opts)) andalso maps:get(K, Opts) > 0)],
    [throw({refused, {bad_limit, K, maps:get(K, Opts)}})
     || K <- [adaptive, lines, logs], not is_boolean(maps:get(K, Opts))],
    %% what a payload may copy out of a traced process on every event
    maps:get(payload_limit, Opts) > ?MAX_PAYLOAD_LIMIT
        andalso throw({refused, {bad_limit, payload_limit, maps:get(payload_limit, Opts)}}),
    case maps:get(duration_ms, Opts) of
        infinity -> ok;
        D when is_integer(D), D > 0 -> ok;
        D -> throw({refused, {bad_limit, duration_ms, D}})
    end.

%%%===================================================================
%%% PROCESSES
%%%===================================================================

own_processes(Exclude) ->
    [self() | Exclude].

%% Throws {refused, Why} for a process that is not there.
resolve_procs(all, Exclude) ->
    Skip = own_processes(Exclude),
    [P || P <- erlang:processes(), not lists:member(P, Skip), worth_tracing(P)];
resolve_procs(Specs, Exclude) when is_list(Specs) ->
    Skip = own_processes(Exclude),
    Roots = [resolve_proc(S) || S <- Specs],
    All = lists:usort(lists:flatmap(fun subtree/1, Roots)),
    [P || P <- All, not lists:member(P, Skip)].

resolve_proc(P) when is_pid(P) ->
    case is_process_alive(P) of
        true -> P;
        false -> throw({refused, {no_such_process, P}})
    end;
resolve_proc(<<"<", _/binary>> = Text) ->
    try list_to_pid(binary_to_list(Text)) of
        P -> resolve_proc(P)
    catch error:badarg -> throw({refused, {no_such_process, Text}})
    end;
resolve_proc(Name) when is_binary(Name) ->
    case existing_atom(Name) of
        {ok, A} ->
            case whereis(A) of
                undefined -> throw({refused, {no_such_process, Name}});
                P -> P
            end;
        error -> throw({refused, {no_such_process, Name}})
    end;
resolve_proc(Other) ->
    throw({refused, {bad_process, Other}}).

%% A supervisor stands for its whole subtree. Only a process known to be a
%% supervisor is asked for its children: the same call would crash a
%% GenServer that does not expect it. A supervisor busy restarting (or
%% stuck in a child's init) answers late or never: the trace starts
%% without that subtree rather than waiting on it (supervisor:which_children
%% waits forever; a late reply to the alias is dropped).
subtree(P) ->
    case is_supervisor(P) of
        true ->
            Children = case catch gen_server:call(P, which_children, ?CHILDREN_WAIT_MS) of
                           L when is_list(L) -> L;
                           _ -> []
                       end,
            [P | lists:flatmap(fun({_, C, _, _}) when is_pid(C) -> subtree(C);
                                  (_) -> [] end, Children)];
        false -> [P]
    end.

is_supervisor(P) ->
    case erlang:process_info(P, dictionary) of
        {dictionary, D} ->
            %% Elixir's DynamicSupervisor (and so Task.Supervisor, and any
            %% `use DynamicSupervisor') is a gen_server whose callback
            %% module is DynamicSupervisor itself; it answers which_children.
            case microscope_agent_inspect:spawned_as(D, none) of
                {supervisor, _, _} -> true;
                {'Elixir.DynamicSupervisor', _, _} -> true;
                %% a GenServer whose callback module is also a supervisor's
                %% (`use DynamicSupervisor' in a module started as itself);
                %% any other function of such a module runs no supervisor
                {M, init, 1} ->
                    Bs = microscope_agent_inspect:behaviours(M),
                    lists:member(supervisor, Bs) orelse lists:member('Elixir.DynamicSupervisor', Bs);
                _ -> false
            end;
        _ -> false
    end.

%% System processes stay out of an "everything" trace: kernel and stdlib
%% internals are noise to an application developer and some (the code
%% server, the distribution controllers) would trace our own traffic.
worth_tracing(P) ->
    case application:get_application(P) of
        {ok, App} -> not lists:member(App, system_apps());
        undefined ->
            case erlang:process_info(P, [registered_name, initial_call, current_function]) of
                undefined -> false;
                Info ->
                    {registered_name, Name} = lists:keyfind(registered_name, 1, Info),
                    {initial_call, {M, _, _}} = lists:keyfind(initial_call, 1, Info),
                    Current = case lists:keyfind(current_function, 1, Info) of
                                  {current_function, {CM, _, _}} -> CM;
                                  _ -> undefined
                              end,
                    %% rpc workers (ours among them) come and go; leave them out.
                    not lists:member(Name, system_names())
                        andalso not lists:member(M, system_modules())
                        andalso not lists:member(Current, [rpc, erpc, erl_eval])
            end
    end.

system_apps() ->
    [kernel, stdlib, elixir, logger, compiler, sasl, runtime_tools, iex, mix, crypto].

system_names() ->
    [init, erts_code_purger, erl_prim_loader, socket_registry, rex, net_kernel,
     erl_epmd, auth, global_name_server, global_group, code_server, user,
     user_drv, standard_error, logger, application_controller, kernel_sup,
     erl_signal_server, file_server_2, inet_db, kernel_refc,
     kernel_safe_sup, logger_sup, global_group_check, erl_distribution,
     net_sup, timer_server, 'Elixir.IEx.Broker', 'Elixir.IEx.Config',
     'Elixir.IEx.Pry'].

system_modules() ->
    [erts_code_purger, erts_literal_area_collector, erts_dirty_process_signal_handler,
     prim_file, socket_registry, erl_init, otp_ring0, init, application_master,
     group, user_drv, user_sup, prim_inet, inet_tcp_dist, dist_util, erl_eval,
     shell, rpc, erpc | microscope_agent:modules()].

%%%===================================================================
%%% FUNCTIONS
%%%===================================================================

%% {Module, Function | '_', Arity | '_'} -> the exported functions it names.
resolve_pattern({ModB, FunB, Arity}) when is_binary(ModB) ->
    Mod = case existing_module(ModB) of
              {ok, M} -> M;
              error -> throw({refused, {no_such_module, ModB}})
          end,
    refuse_dangerous(Mod, FunB),
    Exports = [{F, A} || {F, A} <- Mod:module_info(functions)],
    Selected = [{Mod, F, A} || {F, A} <- Exports,
                               FunB =:= '_' orelse atom_to_binary(F, utf8) =:= FunB,
                               Arity =:= '_' orelse A =:= Arity],
    case Selected of
        [] -> throw({refused, {no_such_function, ModB, FunB, Arity}});
        _ -> Selected
    end;
resolve_pattern(Other) ->
    throw({refused, {bad_pattern, Other}}).

%% Every process runs these; a whole-module pattern on one would trace the
%% node into the ground. Single functions are allowed, under the limits.
refuse_dangerous(Mod, FunB) ->
    case lists:member(Mod, microscope_agent:modules()) of
        true -> throw({refused, {dangerous, tracing_the_agent}});
        false -> refuse_whole(Mod, FunB)
    end.

refuse_whole(Mod, '_') ->
    case lists:member(Mod, [io, lists, erlang, io_lib, maps, ets, gen, gen_server,
                            gen_statem, proc_lib, sys, code, erts_internal, prim_inet]) of
        true -> throw({refused, {dangerous, {whole_module, Mod}}});
        false -> ok
    end;
refuse_whole(_, _) -> ok.

%% Module names come in as binaries; only existing atoms, or modules whose
%% .beam is on the code path (a bounded set), become atoms.
existing_module(Bin) ->
    case existing_atom(Bin) of
        {ok, M} ->
            case code:ensure_loaded(M) of
                {module, M} -> {ok, M};
                _ -> error
            end;
        error ->
            case code:where_is_file(binary_to_list(Bin) ++ ".beam") of
                non_existing -> error;
                _ ->
                    M = binary_to_atom(Bin, utf8),
                    case code:ensure_loaded(M) of
                        {module, M} -> {ok, M};
                        _ -> error
                    end
            end
    end.

existing_atom(Bin) ->
    try {ok, binary_to_existing_atom(Bin, utf8)}
    catch error:badarg -> error
    end.
