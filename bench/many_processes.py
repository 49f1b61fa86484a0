"""What the live-node views cost on a crowded node.

    .venv/bin/python bench/many_processes.py [--processes 50000] [--runs 3]

A fresh OTP 25 node runs tests/erlang/mic_crowd.erl: a supervision tree of
GenServer workers (a supervisor per 49 workers, every 100th registered), so
the node has about --processes processes. Timed, median of --runs:

- s.processes() (target <= 0.5 s at 50,000 processes);
- s.supervision_tree() (target <= 0.5 s);
- trace start: s.trace() of one registered GenServer and of every process,
  each started and stopped (target <= 1 s to start);
- the start details of the every-process trace (hooks asked for, names, links
  and monitors), which follow the start reply: time from start until
  rec.info has them.

Printed next to each: the same table read by an Erlang peer node through
rpc (erlang:processes/0 and process_info/2), the native floor.
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
from nodes import ERLANG_DIR, compile_erlang, load_module, start_node  # noqa: E402

PEER_TABLE = ("{T, _} = timer:tc(fun() -> rpc:call(N, microscope_agent, process_table, [], 60000) "
              "end), T / 1.0e6.")


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, default=50_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    node = start_node("otp25", prefix="bench_crowd", extra_args=["+P", "1000000"])
    peer = start_node("otp25", prefix="bench_peer", cookie=node.cookie)
    try:
        with mic.attach(node.name, cookie=node.cookie) as s, \
                mic.attach(peer.name, cookie=peer.cookie) as p:
            with tempfile.TemporaryDirectory() as tmp:
                load_module(s, compile_erlang(ERLANG_DIR / "mic_crowd.erl", Path(tmp)))
            count = s.rpc("mic_crowd", "start", [args.processes], 300)
            s.processes()  # the agent loaded, caches warm
            rows = {"processes()": [], "supervision_tree()": [], "trace start (one GenServer)": [],
                    "trace start (every process)": [], "  + its start details": [],
                    "erlang peer: process_table": []}
            for _ in range(args.runs):
                rows["processes()"].append(timed(s.processes))
                rows["supervision_tree()"].append(timed(s.supervision_tree))
                t0 = time.perf_counter()
                rec = s.trace("mic_crowd_101")
                rows["trace start (one GenServer)"].append(time.perf_counter() - t0)
                rec.stop()
                t0 = time.perf_counter()
                rec = s.trace()
                t1 = time.perf_counter()
                rec.info  # noqa: B018 - waits for the details
                rows["trace start (every process)"].append(t1 - t0)
                rows["  + its start details"].append(time.perf_counter() - t1)
                rec.stop()
                rows["erlang peer: process_table"].append(
                    p.eval_erlang(PEER_TABLE, N=mic.Atom(node.name)))
            print(f"{count:,} processes on the node, medians of {args.runs} runs (OTP 25)")
            for label, values in rows.items():
                print(f"  {label:<30} {statistics.median(values):6.2f} s")
    finally:
        peer.stop()
        node.stop()


if __name__ == "__main__":
    main()
