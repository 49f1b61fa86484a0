"""Tracing cost and ingest rate: microscope vs the untraced run, a null tracer, and dbg.

    .venv/bin/python bench/trace_overhead.py [--rounds 100000] [--runs 3] [--pairs 3]
                                             [--workload gencall]

Workload, on a fresh OTP 25 node: two processes bounce `--rounds` messages
(pingpong), or one process makes `--rounds` gen_server calls to a counter
(gencall). Each round is 4 trace events (send + receive, both ways). Or the
shape of a real service (service): each round a call, every second a cast,
every eighth a monitored worker awaited (its 'DOWN' received, or flushed by
a demonitor as Task.await does), with the GenServer's state recorded by the
state hook; its null tracer takes spawns and exits too (procs).

- untraced:   the workload alone.
- null:       traced into a tracer that only counts: the BEAM's own trace
              rate here, the physical limit every tracer shares.
- microscope: s.trace() of the workload with limits raised out of the way
              (max_events, max_rate, adaptive granularity, which steps down
              on a saturated node, and shed_queue/max_queue: a momentary
              backlog of 50k messages would otherwise shed events), timed
              until every event has landed in s.events; drops are printed.
- dbg:        dbg's default (printing) tracer, timed until it has printed
              everything (its mailbox empty and its tracer back in its own
              loop), printing on the target into /dev/null (its fastest case:
              every line formatted and written through an io server, none
              kept).
- dbg, remsh: the same, printing to another node's console, as dbg does when
              started from `iex --remsh` / `erl -remsh` (each line is an io
              request over distribution).
- the tracer alone: the agent's tracer with its batches going to a local
              process that drops them (no distribution, no Python), against
              the null tracer in the same evaluation: the BEAM side's rate.
- microscope without monitor tracking: the same trace with the four
              monitor BIFs left unpatterned (a foreign pattern on one of them
              makes the agent leave monitors untracked), to show what
              tracking monitors costs: every gen call removes its own monitor,
              a call-trace message the tracer discards.

Each run takes the null tracer and microscope in turn, --pairs times (a slow
phase of this noisy machine then hits both sides of a pair), each once the
machine is quiet again, and the other measurements once. Prints medians over --runs, then ratios. Also: store bytes per event, and the
target's memory growth under a 10x overload with default limits.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import microscope_jupyter as mic  # noqa: E402
from microscope_jupyter import Atom  # noqa: E402
from nodes import WORKLOAD_SOURCE, compile_erlang, load_module, start_node  # noqa: E402


DRIVERS = {"pingpong": "driver", "gencall": "gencall_driver", "service": "service_driver"}
# Trace messages each round makes (sends and receives); service's are about
# 5 (a call's 4, half a cast's 2, and an eighth of a worker's), more with its
# lifecycle, monitor and state events.
EVENTS_PER_ROUND = {"pingpong": 4, "gencall": 4, "service": 5}
# service is the shape of a real service: its spawns and exits are events,
# so the null tracer takes them too (procs), and its GenServer's state is
# recorded (the state hook), which the null tracer cannot do.
NULL_EXTRA_FLAGS = {"service": [Atom("procs")]}
STATE = {"service": True}


def run_driver(s, rounds: int, tracer=None, trace_ours=False, workload="pingpong", **limits):
    """Start the workload; returns (workload_us, events, wall_s)."""
    driver = s.rpc("mic_workload", DRIVERS[workload], [rounds])
    box = s._local.mailbox()
    rec = None
    if tracer is not None:
        s.rpc("mic_workload", "trace_with", [driver, tracer, NULL_EXTRA_FLAGS.get(workload, [])])
    if trace_ours:
        rec = s.trace(driver, state=STATE.get(workload, False), **limits)
    started = time.perf_counter()
    s._remote.send(box, driver, (Atom("go"), box.pid))
    done = box.receive(timeout=600)
    box.close()
    workload_us = done[1]
    events = None
    if rec is not None:
        done_at = time.perf_counter()
        rec.stop(timeout=600)
        LAG_AFTER_WORKLOAD.append(time.perf_counter() - done_at)
        events = rec.status()["events"]
    return workload_us, events, time.perf_counter() - started, rec


# Seconds from the workload's end until stop() returned with every event in
# the store: the backlog still landing plus the stop itself, one per trace.
LAG_AFTER_WORKLOAD: list[float] = []


def quiesce(limit_s: float = 10.0, busy_below: float = 0.15, window_s: float = 0.2) -> None:
    """Wait until this machine's CPUs are nearly idle over ``window_s`` (at most
    ``limit_s``): what one measurement leaves running (a disk's writeback, a
    node freeing memory) must not fall on the next."""
    def times() -> tuple[int, int]:
        with open("/proc/stat") as stat:
            fields = [int(x) for x in stat.readline().split()[1:]]
        return sum(fields), fields[3] + fields[4]   # total, idle + iowait
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        total0, idle0 = times()
        time.sleep(window_s)
        total1, idle1 = times()
        if total1 > total0 and 1 - (idle1 - idle0) / (total1 - total0) < busy_below:
            return


def null_run(s, rounds: int, workload: str) -> tuple[float, float]:
    """The workload traced into the counting tracer: (workload us, events generated per s)."""
    null = s.rpc("mic_workload", "null_tracer", [])
    us, _, _, _ = run_driver(s, rounds, tracer=null, workload=workload)
    while True:  # let it finish counting
        n1 = s.rpc("mic_workload", "null_count", [null])
        time.sleep(0.05)
        if s.rpc("mic_workload", "null_count", [null]) == n1:
            break
    s.rpc("erlang", "exit", [null, Atom("kill")])
    return us, n1 / (us / 1e6)


# An io device writing to /dev/null, held open by a process of its own (a
# file closes when the process that opened it ends): dbg formats and sends
# every line as usual, and no disk writes them back during later measurements.
DEV_NULL = r"""
Holder = spawn(fun() ->
    {ok, F} = file:open("/dev/null", [write]),
    receive {get, From} -> From ! {dev_null, F} end,
    receive stop -> ok end
end),
Holder ! {get, self()},
receive {dev_null, F} -> {Holder, F} end.
"""


def bench_dbg(s, rounds: int, workload: str, device=None):
    driver = s.rpc("mic_workload", DRIVERS[workload], [rounds])
    holder = None
    if device is None:
        holder, device = s.eval_erlang(DEV_NULL)
    s.eval_erlang("{ok, _} = dbg:tracer(process, {fun dbg:dhandler/2, Out}),"
                  "{ok, _} = dbg:p(D, [m, sos]), ok.", D=driver, Out=device)
    box = s._local.mailbox()
    started = time.perf_counter()
    mem_before = s.rpc("erlang", "memory", [Atom("total")])
    s._remote.send(box, driver, (Atom("go"), box.pid))
    workload_us = box.receive(timeout=600)[1]
    tracer = s.eval_erlang("element(2, dbg:get_tracer()).")
    peak_mem, peak_queue = mem_before, 0
    # An empty mailbox is not the end: dbg's tracer takes what is queued into
    # a list and prints from there (measured: its mailbox empty, it printed
    # on for seconds at 1.3 cores, which fell on the next measurement). It is
    # done when, with nothing queued, it waits in its own receive again.
    idle = [(Atom("message_queue_len"), 0), (Atom("status"), Atom("waiting")),
            (Atom("current_function"), (Atom("dbg"), Atom("recv_all_traces"), 3))]
    while True:
        info = s.rpc("erlang", "process_info",
                     [tracer, [Atom("message_queue_len"), Atom("status"), Atom("current_function")]])
        peak_mem = max(peak_mem, s.rpc("erlang", "memory", [Atom("total")]))
        peak_queue = max(peak_queue, info[0][1])
        if info == idle:
            break
        time.sleep(0.05)
    wall = time.perf_counter() - started
    s.eval_erlang("dbg:stop(), ok.")
    if holder is not None:
        s.rpc("erlang", "send", [holder, Atom("stop")])
    box.close()
    return workload_us, wall, peak_mem - mem_before, peak_queue


# The agent's tracer with no Python behind it: its batches go to a local
# process that drops them, so this is the BEAM side alone (trace delivery,
# encoding, batching) against the null tracer, in one evaluation.
TRACER_ALONE = r"""
Sink = spawn(fun Loop() -> receive _ -> Loop() end end),
Driver = mic_workload:DriverFun(Rounds),
{ok, Agent, _} = microscope_agent:start(Sink, #{procs => [Driver], state => State, adaptive => false,
    max_events => 100 * Rounds, max_rate => 100000000, shed_queue => 10 * Rounds,
    max_queue => 20 * Rounds}),
Expected = PerRound * Rounds,
Kept = fun K() -> {ok, #{kept := N}} = microscope_agent:status(Agent), N end,
T0 = erlang:monotonic_time(microsecond),
Driver ! {go, self()},
receive {_, Done1} when is_integer(Done1) -> ok end,
%% done when past what the workload makes at least and no longer growing
Settled = fun(Count) -> fun W(Last) -> timer:sleep(1), N = Count(),
                                      case N >= Expected andalso N =:= Last of
                                          true -> ok; false -> W(N) end end end,
(Settled(Kept))(-1),
T1 = erlang:monotonic_time(microsecond),
microscope_agent:stop(Agent), exit(Sink, kill),
Null = mic_workload:null_tracer(), D2 = mic_workload:DriverFun(Rounds),
mic_workload:trace_with(D2, Null, NullExtra),
T2 = erlang:monotonic_time(microsecond), D2 ! {go, self()},
receive {_, Done2} when is_integer(Done2) -> ok end,
(Settled(fun() -> mic_workload:null_count(Null) end))(-1),
T3 = erlang:monotonic_time(microsecond), exit(Null, kill),
{T1 - T0, T3 - T2}.
"""


def tracer_alone(s, rounds: int, workload: str) -> tuple[float, float]:
    """(microscope's tracer, null tracer): microseconds until every event is handled."""
    return s.eval_erlang(TRACER_ALONE, Rounds=rounds, DriverFun=Atom(DRIVERS[workload]),
                         PerRound=EVENTS_PER_ROUND[workload],
                         NullExtra=NULL_EXTRA_FLAGS.get(workload, []),
                         State=STATE.get(workload, False))


def overload(s, seconds: float = 10.0):
    """Default limits, a workload generating far more than max_rate: target memory stays bounded."""
    mem0 = s.rpc("erlang", "memory", [Atom("total")])
    driver = s.rpc("mic_workload", "driver", [10_000_000])
    rec = s.trace(driver, state=False)  # defaults: max_rate 200k/s
    box = s._local.mailbox()
    s._remote.send(box, driver, (Atom("go"), box.pid))
    peak = mem0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        peak = max(peak, s.rpc("erlang", "memory", [Atom("total")]))
        time.sleep(0.25)
    status = rec.stop()
    s.rpc("erlang", "exit", [driver, Atom("kill")])
    box.close()
    return peak - mem0, status


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--pairs", type=int, default=3,
                        help="null and microscope traces taken in turn within each run")
    parser.add_argument("--overload-seconds", type=float, default=10.0)
    parser.add_argument("--workload", choices=sorted(DRIVERS), default="pingpong")
    parser.add_argument("--no-state", action="store_true",
                        help="service without its state hook: what the hook costs, by difference")
    args = parser.parse_args()
    if args.no_state:
        STATE[args.workload] = False
    events_expected = EVENTS_PER_ROUND[args.workload] * args.rounds
    node = start_node("otp25", prefix="bench")
    # Where a remote shell's output goes; same cookie, so the target can reach it.
    console = start_node("otp25", prefix="remsh", cookie=node.cookie)
    results: dict[str, list[float]] = {k: [] for k in (
        "untraced_us", "null_us", "null_rate", "mic_us", "mic_rate", "dbg_us", "dbg_rate",
        "bytes_per_event", "nomon_us", "nomon_rate", "remsh_us", "remsh_rate", "mic_dropped",
        "alone_ratio")}
    workload = args.workload
    dbg_mem, dbg_queue = [], []
    ingest_ratios, slowdown_ratios = [], []   # one per run: the median of its pairs
    try:
        with mic.attach(node.name, cookie=node.cookie) as s, \
                mic.attach(console.name, cookie=console.cookie) as c:
            load_module(s, compile_erlang(WORKLOAD_SOURCE, Path(tempfile.mkdtemp())))
            remote_user = c.rpc("erlang", "whereis", [Atom("user")])
            assert s.rpc("net_kernel", "connect_node", [Atom(console.name)]) is True

            for run in range(args.runs):
                us, _, _, _ = run_driver(s, args.rounds, workload=workload)
                results["untraced_us"].append(us)
                # null and microscope in turn, --pairs times: a slow phase of
                # this machine then lands on both sides of some pair, and the
                # run's ratio is the median of its pairs' own ratios.
                pair_ingest, pair_slowdown = [], []
                for _ in range(args.pairs):
                    quiesce()
                    null_us, null_rate = null_run(s, args.rounds, workload)
                    results["null_us"].append(null_us)
                    results["null_rate"].append(null_rate)
                    s.store.__init__()  # a fresh store per trace
                    quiesce()
                    us, events, wall, rec = run_driver(
                        s, args.rounds, trace_ours=True, max_events=10 * events_expected,
                        max_rate=100_000_000, adaptive=False, shed_queue=10 * events_expected,
                        max_queue=20 * events_expected, workload=workload)
                    assert rec.status()["monitors"] == "tracked"
                    results["mic_dropped"].append(rec.status()["dropped"])
                    results["mic_us"].append(us)
                    results["mic_rate"].append(events / wall)
                    results["bytes_per_event"].append(s.store.memory_bytes / max(1, len(s.store)))
                    if events < events_expected:
                        print(f"  note: microscope landed {events} of {events_expected} events "
                              f"({rec.status()['dropped']} dropped)")
                    pair_ingest.append((events / wall) / null_rate)
                    pair_slowdown.append(us / null_us)
                ingest_ratios.append(statistics.median(pair_ingest))
                slowdown_ratios.append(statistics.median(pair_slowdown))

                s.store.__init__()
                s.eval_erlang("erlang:trace_pattern({erlang, demonitor, 1}, true, [local]).")
                try:
                    us, events, wall, rec = run_driver(
                        s, args.rounds, trace_ours=True, max_events=10 * events_expected,
                        max_rate=100_000_000, adaptive=False, shed_queue=10 * events_expected,
                        max_queue=20 * events_expected, workload=workload)
                finally:
                    s.eval_erlang("erlang:trace_pattern({erlang, demonitor, 1}, false, [local]).")
                assert rec.status()["monitors"] == "unavailable"
                results["nomon_us"].append(us)
                results["nomon_rate"].append(events / wall)

                us, wall, mem, queue = bench_dbg(s, args.rounds, workload)
                results["dbg_us"].append(us)
                results["dbg_rate"].append(events_expected / wall)
                dbg_mem.append(mem)
                dbg_queue.append(queue)

                us, wall, _, _ = bench_dbg(s, args.rounds, workload, device=remote_user)
                results["remsh_us"].append(us)
                results["remsh_rate"].append(events_expected / wall)
                mic_alone, null_alone = tracer_alone(s, args.rounds, workload)
                results["alone_ratio"].append(null_alone / mic_alone)
                print(f"run {run + 1}/{args.runs} done", flush=True)
            growth, status = overload(s, args.overload_seconds)
    finally:
        node.stop()
        console.stop()

    med = {k: statistics.median(v) for k, v in results.items() if v}
    print(f"\n{workload}, {args.rounds:,} rounds = {events_expected:,} events; median of {args.runs} runs")
    print(f"  untraced workload          {med['untraced_us'] / 1e3:9.1f} ms")
    print(f"  null tracer                {med['null_us'] / 1e3:9.1f} ms   "
          f"slowdown {med['null_us'] / med['untraced_us']:.2f}x   generation {med['null_rate']:,.0f} ev/s")
    print(f"  microscope                 {med['mic_us'] / 1e3:9.1f} ms   "
          f"slowdown {med['mic_us'] / med['untraced_us']:.2f}x   ingest {med['mic_rate']:,.0f} ev/s")
    print(f"  microscope, no monitors    {med['nomon_us'] / 1e3:9.1f} ms   "
          f"slowdown {med['nomon_us'] / med['untraced_us']:.2f}x   ingest {med['nomon_rate']:,.0f} ev/s")
    print(f"  dbg (printing tracer)      {med['dbg_us'] / 1e3:9.1f} ms   "
          f"slowdown {med['dbg_us'] / med['untraced_us']:.2f}x   end-to-end {med['dbg_rate']:,.0f} ev/s"
          f"   peak backlog {statistics.median(dbg_queue):,.0f} msgs, "
          f"+{statistics.median(dbg_mem) / 2**20:.0f} MiB")
    print(f"  dbg, printing to a remsh   {med['remsh_us'] / 1e3:9.1f} ms   "
          f"slowdown {med['remsh_us'] / med['untraced_us']:.2f}x   end-to-end {med['remsh_rate']:,.0f} ev/s")
    # Each run's own ratio, then their median: on a noisy 2-core machine a
    # slow phase hits both sides of one pair, not the medians of the two.
    print(f"ratios (the median of each run's own ratio, itself the median of its {args.pairs} "
          "null/microscope pairs; each run's in brackets)")
    print(f"  ingest / null generation rate:       {statistics.median(ingest_ratios):.2f}x  "
          f"(target >= 0.95)  [{', '.join(f'{r:.2f}' for r in ingest_ratios)}]")
    if results["alone_ratio"]:
        alone = results["alone_ratio"]
        print(f"  the tracer alone (no Python) / null: {statistics.median(alone):.2f}x  "
              f"[{', '.join(f'{r:.2f}' for r in alone)}]")
    print(f"  dropped at the flood, each trace:    {results['mic_dropped']}  (target: all 0)")
    print(f"  slowdown vs null tracer's slowdown:  {statistics.median(slowdown_ratios):.2f}x  "
          f"(target <= 1.1)  [{', '.join(f'{r:.2f}' for r in slowdown_ratios)}]")
    print(f"  ingest / dbg end-to-end:             {med['mic_rate'] / med['dbg_rate']:.1f}x")
    print(f"  ingest / dbg from a remsh:           {med['mic_rate'] / med['remsh_rate']:.1f}x")
    print(f"  slowdown with / without monitors:    {med['mic_us'] / med['nomon_us']:.2f}x")
    print(f"  store bytes per event:               {med['bytes_per_event']:.0f} B  (target <= 100)")
    print(f"  from the workload's end to stop() returning, all landed: "
          f"{statistics.median(LAG_AFTER_WORKLOAD) * 1e3:.0f} ms (median of every trace)")
    print(f"overload, default limits, {args.overload_seconds:g} s: target memory +{growth / 2**20:.1f} MiB; "
          f"kept {status['events']:,}, dropped {status['dropped']:,} (counted), state {status['state']}")


if __name__ == "__main__":
    main()
