%% Bug: a selective receive that scans a long mailbox. The push gateway
%% handles each publish (a cast) by asking the encoder process to frame the
%% payload and waiting, inside handle_cast, for the reply
%% `{encoded, Seq, Frame}` where Seq is the gateway's own integer counter.
%% The tag is not a reference made right before the receive, so the receive
%% cannot skip the messages already queued: it walks the whole mailbox on
%% every publish. With a short mailbox that costs nothing; after a burst of
%% publishes each handle_cast walks tens of thousands of queued casts, the
%% gateway slows to a crawl (each callback gets slower as the queue grows),
%% and the burst takes seconds to drain instead of milliseconds.
%% Mirrors: hand-rolled request/reply with integer ids or atoms
%% (`receive {reply, Id, R}`), synchronous recv in active-mode socket code
%% (`receive {tcp, Sock, Data}` inside a callback), old driver/port wrappers;
%% the fresh-ref optimisation (make_ref() then receive {Ref, _}) would avoid it.
%% Traffic: a sender publishes every 5 ms (~200/s).
%% Trigger: a burst of 30,000 publishes (a broadcast to every subscriber).
%% Evidence: the gateway's message_queue_len jumps to ~30,000 and drains
%% slowly over ~3 s; each handle_cast takes ~0.1-0.2 ms at the peak, 30x more than with an empty mailbox (tens of
%% thousands of reductions) while the encoder answers at once.
%% Root cause: the receive for {encoded, Seq, _} inside handle_cast must scan
%% every queued message each time, so the cost per message grows with the
%% queue length.
-module(bug_mailbox_scan).
-behaviour(gen_server).

-export([start/0, stop/0, procs/0, trigger/0]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2]).

-define(GATEWAY, bug_mailbox_scan_gateway).
-define(ENCODER, bug_mailbox_scan_encoder).
-define(SENDER, bug_mailbox_scan_sender).
-define(BURST, 30000).

start() ->
    register(?ENCODER, proc_lib:spawn(fun encoder/0)),
    {ok, _} = gen_server:start({local, ?GATEWAY}, ?MODULE, gateway, []),
    register(?SENDER, proc_lib:spawn(fun() -> sender(0) end)),
    ok.

%% a broadcast: one publish per subscriber, all at once
trigger() ->
    proc_lib:spawn(fun() ->
        [gen_server:cast(?GATEWAY, {publish, {user, N}, <<"flash sale">>}) || N <- lists:seq(1, ?BURST)]
    end),
    ok.

stop() ->
    [exit(P, kill) || N <- [?SENDER, ?GATEWAY, ?ENCODER], P <- [whereis(N)], is_pid(P)],
    ok.

procs() -> [P || N <- [?GATEWAY, ?ENCODER, ?SENDER], P <- [whereis(N)], is_pid(P)].

sender(N) ->
    receive after 5 -> ok end,
    gen_server:cast(?GATEWAY, {publish, {user, N rem 500}, <<"new message">>}),
    sender(N + 1).

encoder() ->
    receive
        {encode, From, Seq, Payload} ->
            From ! {encoded, Seq, <<(byte_size(Payload)):16, Payload/binary>>},
            encoder()
    end.

init(gateway) -> {ok, #{seq => 0, delivered => 0}}.

handle_call(stats, _From, S) -> {reply, S, S}.

handle_cast({publish, _To, Payload}, S = #{seq := Seq, delivered := D}) ->
    ?ENCODER ! {encode, self(), Seq, Payload},
    receive
        {encoded, Seq, _Frame} -> {noreply, S#{seq := Seq + 1, delivered := D + 1}}
    after 1000 ->
        {noreply, S#{seq := Seq + 1}}
    end.

handle_info(_Msg, S) -> {noreply, S}.
