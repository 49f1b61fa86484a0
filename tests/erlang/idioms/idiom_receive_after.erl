%% Idiom: hand-written `receive ... after` loops, the two ways people write
%% them. The flusher's `after` is an idle timeout (it restarts with every
%% message, so it fires only in the gaps between bursts); the aggregator's
%% `after` is computed from a fixed deadline (it flushes every 20 ms however
%% busy it is).
%% Mirrors: plain-Erlang workers outside OTP behaviours: a log shipper that
%% writes when the traffic pauses, a stats aggregator reporting on a clock.
%% Traffic: a burst of 20 events every 25 ms to each (~1600 messages/s).
-module(idiom_receive_after).

-export([start/0, stop/0, procs/0]).
-export([flusher/1, aggregator/2, source/1]).

-define(FLUSHER, idiom_receive_after_flusher).
-define(AGG, idiom_receive_after_aggregator).
-define(SINK, idiom_receive_after_sink).
-define(SOURCE, idiom_receive_after_source).

start() ->
    register(?SINK, spawn(fun sink/0)),
    register(?FLUSHER, proc_lib:spawn(?MODULE, flusher, [[]])),
    register(?AGG, proc_lib:spawn(?MODULE, aggregator, [#{}, deadline()])),
    register(?SOURCE, proc_lib:spawn(?MODULE, source, [0])),
    ok.

stop() ->
    [begin M = monitor(process, N), N ! stop, receive {'DOWN', M, _, _, _} -> ok end end
     || N <- [?SOURCE, ?FLUSHER, ?AGG, ?SINK]],
    ok.

procs() -> [P || N <- [?FLUSHER, ?AGG, ?SINK, ?SOURCE], P <- [whereis(N)], is_pid(P)].

%% idle timeout: write the buffer when nothing came for 3 ms
flusher(Buffer) ->
    receive
        stop -> ok;
        {line, L} -> flusher([L | Buffer])
    after 3 ->
        [?SINK ! {write, lists:reverse(Buffer)} || Buffer =/= []],
        flusher([])
    end.

%% deadline: report every 20 ms whatever comes in between
aggregator(Counts, Deadline) ->
    Left = max(0, Deadline - erlang:monotonic_time(millisecond)),
    receive
        stop -> ok;
        {count, K} -> aggregator(maps:update_with(K, fun(N) -> N + 1 end, 1, Counts), Deadline)
    after Left ->
        ?SINK ! {report, Counts},
        aggregator(#{}, deadline())
    end.

deadline() -> erlang:monotonic_time(millisecond) + 20.

sink() ->
    receive
        stop -> ok;
        {write, _Lines} -> sink();
        {report, _Counts} -> sink()
    end.

source(N) ->
    receive stop -> ok
    after 25 ->
        [begin ?FLUSHER ! {line, <<"event ", (integer_to_binary(N + K))/binary>>},
               ?AGG ! {count, K rem 5} end || K <- lists:seq(1, 20)],
        source(N + 20)
    end.
