"""What recording GenServer state costs the traced process, by state size.

    .venv/bin/python bench/state_capture.py [--sizes 1,5,20] [--kinds bump,memo,peek]
                                            [--calls 2000] [--runs 3]

Workload, on a fresh OTP 25 node: a GenServer holding a state of about N MB
(a counter next to a large map, as a cache would be) answers `--calls`
calls of one kind: `bump` adds one to the counter (one small field changes),
`memo` also adds a key to the large map (a memo cache: the big field changes
on every call), `peek` changes nothing. The call round trip is timed on the
node, per call; medians are printed.

- untraced:   the calls alone.
- null hook:  a sys debug hook that does nothing: the cost of sys's debug
              path itself, the floor for any hook-based state capture.
- microscope: s.trace(state=True, messages=False) of the GenServer: every
              transition recorded (what changed, found by identity; the
              state itself is not copied past the size budget).

Each run times the untraced call before and after the traced block (their
mean is the run's baseline), so the machine's drift falls on both sides.
Prints, per size: medians, the median over runs of traced/untraced and
traced/null, and the tool's own cost as the recording reports it (states'
tool_us) next to the measured difference (traced - untraced), with the
median over runs of their ratio: the recording's figure should account for
the difference.
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
from nodes import ERLANG_DIR, compile_erlang, load_module, start_node  # noqa: E402

NAME = Atom("mic_big")
NULL_HOOK = "sys:install(N, {fun mic_load:null_hook/3, ok}), ok."
NULL_UNHOOK = "sys:no_debug(N), ok."


def median_call_us(s, calls: int, kind: str) -> float:
    return statistics.median(s.rpc("mic_load", "time_calls", [NAME, Atom(kind), calls], 600))


def one_size(s, mb: int, calls: int, kind: str) -> dict:
    s.rpc("mic_load", "start_big", [NAME, mb * 1_000_000], 120)
    median_call_us(s, 200, kind)  # warm up: code loaded, caches hot
    out = {"untraced": median_call_us(s, calls, kind)}
    s.eval_erlang(NULL_HOOK, N=NAME)
    out["null"] = median_call_us(s, calls, kind)
    s.eval_erlang(NULL_UNHOOK, N=NAME)
    rec = s.trace("mic_big", messages=False, lifecycle=False, system_monitor=False)
    deadline = time.monotonic() + 30
    while rec.hooks()["status"].iloc[0] != "installed" and time.monotonic() < deadline:
        time.sleep(0.02)
    first = len(s.events)
    out["microscope"] = median_call_us(s, calls, kind)
    rec.stop(timeout=120)
    # The untraced call again: the baseline brackets the traced block, so a
    # drift of the machine during the run falls on both sides.
    out["untraced"] = (out["untraced"] + median_call_us(s, calls, kind)) / 2
    states = s.states("mic_big")
    states = states[states["seq"] >= first]
    out["tool_reported"] = float(states["tool_us"].median()) if len(states) else float("nan")
    out["recorded"] = len(states)
    s.rpc("erlang", "exit", [s.rpc("erlang", "whereis", [NAME]), Atom("kill")])
    time.sleep(0.1)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1,5,20", help="state sizes in MB")
    parser.add_argument("--kinds", default="bump,memo,peek",
                        help="calls: bump (a small field changes), memo (the big map gains a "
                             "key), peek (nothing changes)")
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    node = start_node("otp25", prefix="bench_state")
    try:
        with mic.attach(node.name, cookie=node.cookie) as s:
            with tempfile.TemporaryDirectory() as tmp:
                load_module(s, compile_erlang(ERLANG_DIR / "mic_load.erl", Path(tmp)))
            print(f"state capture, {args.calls} calls per run, medians of {args.runs} runs "
                  f"(OTP {s.node_info()['otp_release']})")
            print(f"{'kind':>5} {'state':>6} {'untraced':>10} {'null hook':>10} {'microscope':>11} "
                  f"{'/untraced':>10} {'/null':>7} {'tool (rec)':>11} {'measured':>9} "
                  f"{'rec/meas':>9}")
            for kind, mb in ((k, int(x)) for k in args.kinds.split(",")
                             for x in args.sizes.split(",")):
                runs = [one_size(s, mb, args.calls, kind) for _ in range(args.runs)]
                med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
                # Ratios per run, then their median: each run's pair shares its moment.
                ratio = statistics.median(r["microscope"] / r["untraced"] for r in runs)
                per_null = statistics.median(r["microscope"] / r["null"] for r in runs)
                share = statistics.median(r["tool_reported"] / (r["microscope"] - r["untraced"])
                                          for r in runs if r["microscope"] > r["untraced"])
                measured = statistics.median(r["microscope"] - r["untraced"] for r in runs)
                print(f"{kind:>5} {mb:>4}MB {med['untraced']:>8.1f}us {med['null']:>8.1f}us "
                      f"{med['microscope']:>9.1f}us {ratio:>9.2f}x "
                      f"{per_null:>6.2f}x {med['tool_reported']:>9.1f}us "
                      f"{measured:>7.1f}us {share:>8.2f}x"
                      f"   ({int(med['recorded'])} transitions recorded)")
    finally:
        node.stop()


if __name__ == "__main__":
    main()
