%%% @doc What a person looking at the node asks, answered on the node:
%%% every process (process_table/0), every process with its place in the
%%% supervision tree (process_tree/0), one process in detail with its state
%%% (process_details/2), a module's source and its functions' lines
%%% (module_source/1).
%%%
%%% ```
%%%   {microscope_columns, N, [{pid, pids, Bin}, {name, terms, {Names, Ix}}, ...]}
%%%       = process_table()
%%%   {ok, #{state := {ok, State}, links := [...], ...}} = process_details(<<"Demo.Stats">>, 500)
%%% '''
%%%
%%% Tables go as columns (COLUMNS, PIDS, RELATIONS below: what
%%% microscope_jupyter/agent/tables.py decodes; a trace's start details use
%%% them too), so that Python decodes a handful of terms, not a term per
%%% row. Nothing here waits on a busy process longer than asked.
-module(microscope_agent_inspect).
-include("microscope_agent.hrl").

-export([process_table/0, process_tree/0, process_details/2, module_source/1]).
%% the column encodings, and what a process was spawned as
-export([columns/2, pid_list/1, relation_columns/1, spawned_as/2, behaviours/1]).

%%%===================================================================
%%% TABLES
%%%===================================================================

%% @doc Every process, as columns (see COLUMNS): pid, name, initial_call,
%% current_function, status, message_queue_len, memory, reductions.
%% proc_lib processes all start in proc_lib:init_p/5; their real entry
%% point is in their dictionary, read only for them.
process_table() ->
    columns([{pid, pids}, {name, terms}, {initial_call, terms}, {current_function, terms},
             {status, terms}, {message_queue_len, ints}, {memory, ints}, {reductions, ints}],
            lists:filtermap(fun table_row/1, erlang:processes())).

table_row(P) ->
    case erlang:process_info(P, [registered_name, initial_call, current_function, status,
                                 message_queue_len, memory, reductions]) of
        undefined -> false;
        [{registered_name, Name}, {initial_call, Call}, {current_function, Current},
         {status, Status}, {message_queue_len, Queue}, {memory, Memory},
         {reductions, Reductions}] ->
            Initial = case Call of
                          {proc_lib, init_p, 5} ->
                              case erlang:process_info(P, dictionary) of
                                  {dictionary, D} -> spawned_as(D, Call);
                                  _ -> undefined
                              end;
                          _ -> Call
                      end,
            {true, {P, Name, Initial, Current, Status, Queue, Memory, Reductions}}
    end.

%% @doc Every process with what a supervision tree needs, as columns: pid,
%% name, parent, initial_call, status, message_queue_len, memory,
%% application, reductions. Parent is the first '$ancestors' entry (proc_lib
%% keeps it).
%% Both tables are compiled here rather than sent as erl_eval source: on a
%% node with 50k processes the interpreted versions cost the node seconds.
process_tree() ->
    columns([{pid, pids}, {name, terms}, {parent, pids}, {initial_call, terms},
             {status, terms}, {message_queue_len, ints}, {memory, ints},
             {application, terms}, {reductions, ints}],
            lists:filtermap(fun tree_row/1, erlang:processes())).

tree_row(P) ->
    case erlang:process_info(P, [registered_name, dictionary, status, message_queue_len,
                                 memory, initial_call, reductions]) of
        undefined -> false;
        [{registered_name, Name}, {dictionary, D}, {status, Status},
         {message_queue_len, Queue}, {memory, Memory}, {initial_call, Call},
         {reductions, Reductions}] ->
            Parent = case lists:keyfind('$ancestors', 1, D) of
                         {_, [A | _]} when is_pid(A) -> A;
                         {_, [A | _]} when is_atom(A) -> whereis(A);
                         _ -> undefined
                     end,
            Initial = spawned_as(D, Call),
            App = case application:get_application(P) of {ok, Ap} -> Ap; _ -> undefined end,
            {true, {P, Name, Parent, Initial, Status, Queue, Memory, App, Reductions}}
    end.

%%%===================================================================
%%% ONE PROCESS
%%%===================================================================

%% @doc One process as a person inspecting it wants it: its links and
%% monitors, where it is, its counters, and (for a GenServer, gen_statem or
%% other sys process that answers within Timeout ms) its state. A busy
%% process does not answer in time: the state is then {error, timeout},
%% never a wait. Never more than Timeout.
process_details(Text = <<"<", _/binary>>, Timeout) ->
    try list_to_pid(binary_to_list(Text)) of
        P -> process_details(P, Timeout)
    catch error:badarg -> {error, not_a_pid}
    end;
process_details(Name, Timeout) when is_binary(Name) ->
    %% Only an atom the node already has can name a process: none is created.
    try whereis(binary_to_existing_atom(Name, utf8)) of
        P when is_pid(P) -> process_details(P, Timeout);
        _ -> {error, not_registered}
    catch error:badarg -> {error, not_registered}
    end;
process_details(P, Timeout) when is_pid(P) ->
    Info = erlang:process_info(P, [registered_name, status, message_queue_len, memory,
                                   reductions, current_function, links, monitors,
                                   monitored_by, trap_exit]),
    case Info of
        undefined -> {error, not_alive};
        _ ->
            State = case erlang:process_info(P, dictionary) of
                        {dictionary, D} when is_list(D) ->
                            case lists:keymember('$initial_call', 1, D) of
                                true -> withhold_cookie(P, catch_state(P, Timeout));
                                false -> {error, not_a_sys_process}
                            end;
                        _ -> {error, not_alive}
                    end,
            {ok, maps:from_list([{state, State} | Info])}
    end.

%% The node's cookie never leaves it: the auth server's state is the node's
%% cookies, and in any other state the cookie atom is replaced.
withhold_cookie(P, {ok, State}) ->
    case {whereis(auth), erlang:get_cookie()} of
        {P, _} -> {error, holds_the_node_cookie};
        {_, nocookie} -> {ok, State};
        {_, Cookie} -> {ok, without_cookie(State, Cookie)}
    end;
withhold_cookie(_, Other) ->
    Other.

without_cookie(Cookie, Cookie) -> '$cookie_withheld';
without_cookie(T, C) when is_tuple(T) -> list_to_tuple(without_cookie(tuple_to_list(T), C));
without_cookie([H | T], C) -> [without_cookie(H, C) | without_cookie(T, C)];
without_cookie(M, C) when is_map(M) ->
    maps:from_list([{without_cookie(K, C), without_cookie(V, C)} || {K, V} <- maps:to_list(M)]);
without_cookie(T, _) -> T.

%% sys:get_state in a helper: if the process does not answer, the helper
%% is killed and the caller goes on (the request stays in the process's
%% mailbox and its late answer goes to a dead pid, which costs nothing).
catch_state(P, Timeout) ->
    Self = self(),
    Ref = make_ref(),
    {Helper, MRef} = spawn_monitor(fun() -> Self ! {Ref, catch sys:get_state(P, infinity)} end),
    receive
        {Ref, {'EXIT', Why}} -> erlang:demonitor(MRef, [flush]), {error, Why};
        {Ref, State} -> erlang:demonitor(MRef, [flush]), {ok, State}
    after Timeout ->
        exit(Helper, kill),
        erlang:demonitor(MRef, [flush]),
        receive {Ref, _} -> ok after 0 -> ok end,
        {error, timeout}
    end.

%%%===================================================================
%%% MODULE SOURCE
%%%===================================================================

%% @doc Where a module's source is and what its functions' lines are:
%% #{source => Path | undefined, text => Binary | undefined (the file, when
%% this node can read it and it is under 2 MB), functions => [{Name, Arity,
%% Line}] from the debug info (Erlang's abstract code, or Elixir's through
%% its debug_info backend), or {error, Why} when a release stripped it}.
module_source(Module) when is_atom(Module) ->
    case code:ensure_loaded(Module) of
        {module, Module} ->
            Compile = try Module:module_info(compile) catch _:_ -> [] end,
            Source = case lists:keyfind(source, 1, Compile) of
                         {source, S} -> unicode:characters_to_binary(S);
                         false -> undefined
                     end,
            {ok, #{source => Source, text => read_source(Source),
                   functions => function_lines(Module)}};
        {error, Why} -> {error, Why}
    end.

read_source(undefined) -> undefined;
read_source(Path) ->
    case file:read_file_info(Path) of
        {ok, Info} when element(2, Info) < 2000000 ->
            case file:read_file(Path) of
                {ok, Text} -> Text;
                _ -> undefined
            end;
        _ -> undefined
    end.

function_lines(Module) ->
    Beam = case code:which(Module) of
               Path when is_list(Path) -> Path;
               _ -> case code:get_object_code(Module) of
                        {_, Binary, _} -> Binary;
                        error -> none
                    end
           end,
    case Beam =/= none andalso beam_lib:chunks(Beam, [debug_info]) of
        {ok, {Module, [{debug_info, {debug_info_v1, Backend, Data}}]}} ->
            case catch Backend:debug_info(erlang_v1, Module, Data, []) of
                {ok, Forms} ->
                    [{Name, Arity, erl_anno:line(Anno)}
                     || {function, Anno, Name, Arity, _} <- Forms];
                _ -> {error, no_debug_info}
            end;
        {ok, {Module, [{debug_info, _}]}} -> {error, no_debug_info};
        _ -> {error, no_debug_info}
    end.

%%%===================================================================
%%% COLUMNS
%%%===================================================================

%% COLUMNS: a table of N rows as {microscope_columns, N, [{Name, Kind, Data}]},
%% so that the client decodes a handful of terms, not N times a row's:
%%   pids   Data is one binary, the pids' texts joined by spaces ("" for a
%%          row without one);
%%   ints   Data is a binary of N signed 64-bit little-endian integers;
%%   terms  Data is {Distinct, Index}: the distinct values, and a binary of
%%          N 32-bit little-endian indexes into them (an MFA, a status or
%%          an application repeats across thousands of processes).
columns(Spec, Rows) ->
    {_, Out} = lists:foldl(
                 fun({Name, Kind}, {I, Acc}) ->
                         Values = [element(I, R) || R <- Rows],
                         {I + 1, [{Name, Kind, column(Kind, Values)} | Acc]}
                 end, {1, []}, Spec),
    {microscope_columns, length(Rows), lists:reverse(Out)}.

column(pids, Values) ->
    iolist_to_binary(lists:join($\s, [case is_pid(P) of
                                          true -> pid_to_list(P);
                                          false -> ""
                                      end || P <- Values]));
column(ints, Values) ->
    << <<V:64/little-signed>> || V <- Values >>;
column(terms, Values) ->
    {Index, _, Distinct} =
        lists:foldl(fun(V, {Acc, Seen, Ds}) ->
                            case Seen of
                                #{V := I} -> {[I | Acc], Seen, Ds};
                                _ ->
                                    I = map_size(Seen),
                                    {[I | Acc], Seen#{V => I}, [V | Ds]}
                            end
                    end, {[], #{}, []}, Values),
    {lists:reverse(Distinct), << <<I:32/little>> || I <- lists:reverse(Index) >>}.

%% PIDS: {microscope_pids, Nodes, Bin}, Bin holding per pid its node's index
%% in Nodes (16 bits) and its id, serial and creation (32 bits each), all
%% little-endian.
pid_list(Pids) ->
    Nodes = lists:usort([node(P) || P <- Pids]),
    NodeIx = maps:from_list(lists:zip(Nodes, lists:seq(0, length(Nodes) - 1))),
    {microscope_pids, Nodes,
     << <<(maps:get(node(P), NodeIx)):16/little, (pid_numbers(P))/binary>> || P <- Pids >>}.

pid_numbers(P) ->
    case term_to_binary(P) of
        <<131, 88, Rest/binary>> ->         % NEW_PID_EXT: 32-bit creation
            <<Id:32, Serial:32, Creation:32>> = binary:part(Rest, byte_size(Rest) - 12, 12),
            <<Id:32/little, Serial:32/little, Creation:32/little>>;
        <<131, 103, Rest/binary>> ->        % PID_EXT: 8-bit creation
            <<Id:32, Serial:32, Creation:8>> = binary:part(Rest, byte_size(Rest) - 9, 9),
            <<Id:32/little, Serial:32/little, Creation:32/little>>
    end.

%% RELATIONS: {microscope_relations, Pids, Bin}: Pids the distinct pids (as
%% PIDS), Bin per relation the holder's index (32 bits), the relation
%% (8 bits: 0 link, 1 monitor, 2 monitored_by) and the peer's index (32 bits).
relation_columns(Relations) ->
    Pids = lists:usort(lists:append([[A, B] || {A, _, B} <- Relations])),
    Ix = maps:from_list(lists:zip(Pids, lists:seq(0, length(Pids) - 1))),
    {microscope_relations, pid_list(Pids),
     << <<(maps:get(A, Ix)):32/little, (relation_code(R)):8, (maps:get(B, Ix)):32/little>>
        || {A, R, B} <- Relations >>}.

relation_code(link) -> 0;
relation_code(monitor) -> 1;
relation_code(monitored_by) -> 2.

%%%===================================================================
%%% WHAT A PROCESS IS
%%%===================================================================

%% The function a proc_lib process (every OTP behaviour) was started with:
%% its own initial call is always proc_lib:init_p/5, the real one is kept in
%% its dictionary. Default for any other process.
spawned_as(Dictionary, Default) ->
    case lists:keyfind('$initial_call', 1, Dictionary) of
        {_, MFA} -> MFA;
        false -> Default
    end.

behaviours(M) ->
    try M:module_info(attributes) of
        Attrs -> lists:append([Bs || {K, Bs} <- Attrs, K =:= behaviour orelse K =:= behavior])
    catch _:_ -> []
    end.
