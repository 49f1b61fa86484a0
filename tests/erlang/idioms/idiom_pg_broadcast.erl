%% Idiom: process groups with pg (kernel, OTP 23+): a scope of its own,
%% members that join and leave groups, a publisher that broadcasts to
%% pg:get_members/2. Members switch rooms now and then (leave + join);
%% they stay alive, so a broadcast that raced a leave still lands on a live
%% process, which ignores rooms it has left.
%% Mirrors: Phoenix.PubSub's pg adapter / a chat app's rooms, presence-like
%% fan-out to subscribers.
%% Traffic: a broadcast to one of 3 rooms every 3 ms (~4 members each, ~1300
%% deliveries/s); one member switches room every 50 ms.
-module(idiom_pg_broadcast).
-behaviour(gen_server).

-export([start/0, stop/0, procs/0]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2]).

-define(SCOPE, idiom_pg_broadcast_scope).
-define(PUB, idiom_pg_broadcast_publisher).
-define(MEMBERS, 12).

start() ->
    {ok, Scope} = pg:start_link(?SCOPE),
    unlink(Scope),
    [{ok, _} = gen_server:start({local, member(K)}, ?MODULE, {member, K}, [])
     || K <- lists:seq(1, ?MEMBERS)],
    {ok, _} = gen_server:start({local, ?PUB}, ?MODULE, publisher, []),
    ok.

stop() ->
    [gen_server:stop(N) || N <- [?PUB | [member(K) || K <- lists:seq(1, ?MEMBERS)]]],
    gen_server:stop(?SCOPE).

procs() ->
    [P || N <- [?PUB, ?SCOPE | [member(K) || K <- lists:seq(1, ?MEMBERS)]],
          P <- [whereis(N)], is_pid(P)].

member(K) -> list_to_atom("idiom_pg_broadcast_member" ++ integer_to_list(K)).

init({member, K}) ->
    Room = {room, K rem 3},
    ok = pg:join(?SCOPE, Room, self()),
    {ok, #{room => Room, seen => 0, ignored => 0}};
init(publisher) ->
    erlang:send_after(3, self(), publish),
    erlang:send_after(50, self(), shuffle),
    {ok, #{n => 0}}.

handle_call(switch, _From, S = #{room := {room, R}}) ->
    New = {room, (R + 1) rem 3},
    ok = pg:leave(?SCOPE, {room, R}, self()),
    ok = pg:join(?SCOPE, New, self()),
    {reply, New, S#{room := New}}.

handle_cast(_Msg, S) -> {noreply, S}.

handle_info({broadcast, Room, _Text}, S = #{room := Room, seen := N}) ->
    {noreply, S#{seen := N + 1}};
handle_info({broadcast, _OtherRoom, _Text}, S = #{ignored := I}) ->
    {noreply, S#{ignored := I + 1}};
handle_info(publish, S = #{n := N}) ->
    erlang:send_after(3, self(), publish),
    Room = {room, N rem 3},
    [M ! {broadcast, Room, <<"hello">>} || M <- pg:get_members(?SCOPE, Room)],
    {noreply, S#{n := N + 1}};
handle_info(shuffle, S = #{n := N}) ->
    erlang:send_after(50, self(), shuffle),
    _ = gen_server:call(member(1 + N rem ?MEMBERS), switch),
    {noreply, S}.
