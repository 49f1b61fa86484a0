%% A crowded node: N processes in a supervision tree, as a large app has them
%% (a top supervisor, a supervisor per 50 workers, GenServer workers, every
%% 100th registered). For tests and benchmarks of what scales with processes.
-module(mic_crowd).
-behaviour(supervisor).

-export([start/1, stop/0]).
-export([init/1, handle_call/3, handle_cast/2, start_worker/1]).

start(N) ->
    {ok, Top} = supervisor:start_link({local, mic_crowd}, ?MODULE, {top, N}),
    unlink(Top),
    length(erlang:processes()).

stop() ->
    case whereis(mic_crowd) of
        undefined -> ok;
        Top -> exit(Top, shutdown), ok
    end.

init({top, N}) ->
    Groups = [#{id => K, start => {supervisor, start_link, [?MODULE, {group, K}]},
                type => supervisor} || K <- lists:seq(1, max(1, N div 50))],
    {ok, {#{strategy => one_for_one, intensity => 10, period => 1}, Groups}};
init({group, K}) ->
    Workers = [#{id => I, start => {?MODULE, start_worker, [K * 100 + I]}}
               || I <- lists:seq(1, 49)],
    {ok, {#{strategy => one_for_one, intensity => 10, period => 1}, Workers}};
init({worker, I}) ->
    {ok, #{id => I, seen => 0}}.

start_worker(I) when I rem 100 =:= 1 ->
    gen_server:start_link({local, list_to_atom("mic_crowd_" ++ integer_to_list(I))}, ?MODULE,
                          {worker, I}, []);
start_worker(I) ->
    gen_server:start_link(?MODULE, {worker, I}, []).

handle_call(_, _From, S = #{seen := N}) -> {reply, N, S#{seen := N + 1}}.
handle_cast(_, S = #{seen := N}) -> {noreply, S#{seen := N + 1}}.
