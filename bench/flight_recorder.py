"""What a flight recorder costs the node, at each granularity.

    .venv/bin/python bench/flight_recorder.py [--rounds 300000] [--runs 5] [--workload pingpong]
    .venv/bin/python bench/flight_recorder.py --levels counters --rounds 1000000

Workload, on a fresh OTP 25 node: one process makes --rounds gen_server calls
to a counter it starts (gencall), or two processes bounce --rounds messages
(pingpong). In each run, in this order:

- null:       traced into a tracer that only counts (the physical limit);
- recorder at each granularity (full, capped, sampled, counters, adaptive):
              s.flight_recorder(driver, granularity=G) with its default limits,
              the workload, then the recorder's status and its removal;
- full-unlimited: full with max_rate raised, so it keeps every event;
each right after an untraced run of its own (its baseline), once the node is
quiet (run queues empty: a killed tracer's backlog is freed afterwards and
would cost the next measurement).

Prints medians, each run's ratio against untraced and against the null
tracer's slowdown (one run's ratio, then the median: a slow phase of a noisy
2-core host falls on both sides of one run), what the ring held, and the
recorder's memory on the node against its max_bytes.
Targets: counters <= 1.05x untraced; full <= the null tracer's slowdown.
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
from trace_overhead import DRIVERS  # noqa: E402

LEVELS = ["full", "capped", "sampled", "counters", "adaptive", "full-unlimited"]
# full-unlimited: full with max_rate out of the way (the default, 200k/s, drops
# and counts what a flood sends beyond it): every event kept, as the null tracer.


def run(s, rounds: int, workload: str, tracer=None, recorder: str | None = None,
        max_bytes: int = 16_000_000):
    """The workload's microseconds, and the recorder's status at its end."""
    driver = s.rpc("mic_workload", DRIVERS[workload], [rounds])
    status = None
    if tracer is not None:
        s.rpc("mic_workload", "trace_with", [driver, tracer])
    fr = None
    if recorder is not None:
        limits = {"max_rate": 100_000_000} if recorder == "full-unlimited" else {}
        fr = s.flight_recorder(driver, granularity=recorder.removesuffix("-unlimited"),
                               max_bytes=max_bytes, until="10m", **limits)
    box = s._local.mailbox()
    s._remote.send(box, driver, (Atom("go"), box.pid))
    us = box.receive(timeout=600)[1]
    box.close()
    if fr is not None:
        status = fr.status()
        fr.remove()
    return us, status


def settle(s, quiet_polls: int = 3) -> None:
    """Wait until the node's run queues have been empty for a few polls: what the
    last measurement left (a killed tracer's mailbox being freed) costs the next."""
    quiet = 0
    while quiet < quiet_polls:
        busy = s.rpc("erlang", "statistics", [Atom("total_run_queue_lengths_all")])
        quiet = quiet + 1 if busy <= 1 else 0
        time.sleep(0.05)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=300_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--workload", choices=sorted(DRIVERS), default="pingpong")
    parser.add_argument("--max-bytes", type=int, default=16_000_000)
    parser.add_argument("--levels", default=",".join(LEVELS),
                        help="granularities to measure, e.g. counters (longer runs: less noise)")
    args = parser.parse_args()
    levels = [lv for lv in args.levels.split(",") if lv in LEVELS]
    node = start_node("otp25", prefix="benchfr")
    configs = ["null", *levels]
    times: dict[str, list[float]] = {k: [] for k in configs}
    baseline: dict[str, list[float]] = {k: [] for k in configs}   # the untraced run just before
    statuses: dict[str, list[dict]] = {k: [] for k in levels}
    try:
        with mic.attach(node.name, cookie=node.cookie) as s:
            load_module(s, compile_erlang(WORKLOAD_SOURCE, Path(tempfile.mkdtemp())))
            for n in range(args.runs):
                for config in configs:
                    settle(s)
                    baseline[config].append(run(s, args.rounds, args.workload)[0])
                    settle(s)
                    if config == "null":
                        null = s.rpc("mic_workload", "null_tracer", [])
                        times["null"].append(run(s, args.rounds, args.workload, tracer=null)[0])
                        s.rpc("erlang", "exit", [null, Atom("kill")])
                        continue
                    us, status = run(s, args.rounds, args.workload, recorder=config,
                                     max_bytes=args.max_bytes)
                    times[config].append(us)
                    statuses[config].append(status)
                print(f"run {n + 1}/{args.runs} done", flush=True)
    finally:
        node.stop()
    times["untraced"] = baseline["null"]

    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"\n{args.workload}, {args.rounds:,} rounds; median of {args.runs} runs; "
          f"max_bytes {args.max_bytes:,}")
    print(f"  untraced      {med['untraced'] / 1e3:8.1f} ms")
    null_ratios = [n / u for n, u in zip(times["null"], baseline["null"])]
    print(f"  null tracer   {med['null'] / 1e3:8.1f} ms   slowdown "
          f"{statistics.median(null_ratios):.2f}x")
    print("  recorder      time        vs untraced          vs null's slowdown   "
          "ring: events  dropped  held MB  memory MB")
    for level in levels:
        vs_untraced = [t / u for t, u in zip(times[level], baseline[level])]
        vs_null = [(t / u) / (n / nu) for t, u, n, nu
                   in zip(times[level], baseline[level], times["null"], baseline["null"])]
        last = statuses[level][-1]
        print(f"  {level:<14} {med[level] / 1e3:8.1f} ms  {statistics.median(vs_untraced):5.2f}x "
              f"[{', '.join(f'{r:.2f}' for r in vs_untraced)}]  "
              f"{statistics.median(vs_null):5.2f}x  "
              f"{last['events']:>12,} {last.get('dropped', 0):>8,} "
              f"{last['held_bytes'] / 1e6:8.2f} {last['memory'] / 1e6:10.2f}")
    print("targets: counters <= 1.05x untraced; full <= 1.00x the null tracer's slowdown")


if __name__ == "__main__":
    main()
