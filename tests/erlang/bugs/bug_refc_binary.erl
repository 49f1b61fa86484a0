%% Bug: refc binary retention. A telemetry router receives 4 KB packets from a
%% fleet of devices, forwards each to the storage writer, and remembers the
%% last header it saw per device (for a "last seen" status page). The header
%% is matched out of the packet as a 128-byte sub-binary (too big for the GC
%% to copy it out), so each stored header keeps its whole 4 KB packet alive
%% (binary:copy would not). The router's
%% own heap stays tiny (a map of small sub-binary handles), so it rarely
%% garbage-collects and the packets it merely passed on linger too.
%% Mirrors: routers/proxies/parsers that keep a slice of an incoming
%% binary (a session id, a header, a JSON field from jsx/jason) in state
%% or ETS: the classic "binary leak" of long-lived BEAM processes.
%% Traffic: ~200 packets/s from 10000 devices, each a fresh 4 KB binary.
%% Evidence: process_info(bug_refc_binary_router, binary) lists thousands of
%% 4 KB refc binaries (MBs, growing ~1 MB/s) while its heap stays small;
%% erlang:memory(binary) grows with it; the writer holds none.
%% Root cause: the router keeps sub-binaries of large refc packets in its
%% state (and GCs rarely), so every whole packet stays referenced and binary
%% memory grows.
-module(bug_refc_binary).
-behaviour(gen_server).

-export([start/0, stop/0, procs/0]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2]).

-define(ROUTER, bug_refc_binary_router).
-define(WRITER, bug_refc_binary_writer).
-define(FLEET, bug_refc_binary_fleet).
-define(DEVICES, 10000).

start() ->
    {ok, _} = gen_server:start({local, ?WRITER}, ?MODULE, writer, []),
    {ok, _} = gen_server:start({local, ?ROUTER}, ?MODULE, router, []),
    register(?FLEET, spawn(fun() -> fleet(0) end)),
    ok.

stop() ->
    case whereis(?FLEET) of
        undefined -> ok;
        F -> M = monitor(process, F), F ! stop, receive {'DOWN', M, _, _, _} -> ok end
    end,
    [catch gen_server:stop(N) || N <- [?ROUTER, ?WRITER]],
    ok.

procs() -> [P || N <- [?ROUTER, ?WRITER, ?FLEET], P <- [whereis(N)], is_pid(P)].

%% the devices: a 4 KB packet (128-byte header + readings) every ~4 ms
fleet(N) ->
    receive stop -> ok
    after 4 ->
        Device = (N * 7919) rem ?DEVICES,
        Meta = <<"fw=2.4.1;site=", (integer_to_binary(Device rem 40))/binary, ";">>,
        Header0 = <<Device:32, N:64, (erlang:system_time(millisecond)):64, Meta/binary>>,
        Header = <<Header0/binary, 0:((128 - byte_size(Header0)) * 8)>>,
        Body = binary:copy(<<(N rem 256)>>, 4096 - 128),
        gen_server:cast(?ROUTER, {packet, <<Header/binary, Body/binary>>}),
        fleet(N + 1)
    end.

init(router) -> {ok, #{last_seen => #{}, routed => 0}};
init(writer) -> {ok, #{bytes => 0, packets => 0}}.

handle_call(status, _From, S = #{last_seen := L}) ->
    {reply, maps:size(L), S}.

%% router: route the packet, remember the device's last header
handle_cast({packet, Packet = <<Header:128/binary, _/binary>>}, S = #{last_seen := L, routed := R}) ->
    <<Device:32, _/binary>> = Header,
    gen_server:cast(?WRITER, {store, Packet}),
    {noreply, S#{last_seen := L#{Device => Header}, routed := R + 1}};
%% writer: "store" it (checksum + count) and drop it
handle_cast({store, Packet}, S = #{bytes := B, packets := P}) ->
    _ = erlang:crc32(Packet),
    {noreply, S#{bytes := B + byte_size(Packet), packets := P + 1}}.

handle_info(_Msg, S) -> {noreply, S}.
