"""rpc round trips per second: microscope's client vs an Erlang peer vs erl_call.

    .venv/bin/python bench/rpc_roundtrip.py [--calls 5000] [--runs 5]

All three make the same call, ``erlang:abs(-1)`` on the same freshly started
OTP 25 node, in the same run:

- microscope: ``Session.rpc`` from this Python process (sequential);
- erlang peer: a second Erlang node doing ``rpc:call/4`` in a loop, timed
  with ``timer:tc`` inside that node (the native client; our ceiling);
- erl_call: the erl_interface command-line client, one process per call
  (what shell scripts use today).

Prints medians over ``--runs`` and ratios against the peers.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import microscope_jupyter as mic  # noqa: E402
from nodes import HOST, start_node, unique_name  # noqa: E402


def ours(session, calls: int) -> float:
    started = time.perf_counter()
    for _ in range(calls):
        session.rpc("erlang", "abs", [-1])
    return calls / (time.perf_counter() - started)


def erlang_peer(target: str, cookie: str, calls: int) -> float:
    src = (f"T = '{target}', true = net_kernel:connect_node(T), "
           f"{{Us, _}} = timer:tc(fun() -> lists:foreach(fun(_) -> 1 = rpc:call(T, erlang, abs, [-1]) end, "
           f"lists:seq(1, {calls})) end), io:format(\"~p~n\", [Us]), halt().")
    out = subprocess.run(["erl", "-sname", unique_name("peer"), "-setcookie", cookie, "-hidden",
                          "-noshell", "-eval", src], capture_output=True, text=True, check=True)
    micros = int(out.stdout.strip().splitlines()[-1])
    return calls / (micros / 1e6)


def erl_call(target: str, cookie: str, calls: int) -> float | None:
    exe = shutil.which("erl_call") or next(iter(Path("/usr/lib/erlang/lib").glob(
        "erl_interface-*/bin/erl_call")), None)
    if exe is None:
        return None
    alive = target.split("@")[0]
    started = time.perf_counter()
    for _ in range(calls):
        subprocess.run([str(exe), "-sname", alive, "-c", cookie, "-a", "erlang abs [-1]"],
                       capture_output=True, check=True)
    return calls / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=5000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--erl-call-calls", type=int, default=50)
    args = parser.parse_args()

    node = start_node("otp25", prefix="bench")
    try:
        results: dict[str, list[float]] = {"microscope": [], "erlang peer": [], "erl_call": []}
        with mic.attach(node.name, cookie=node.cookie) as session:
            ours(session, 200)  # warm up
            for _ in range(args.runs):
                results["microscope"].append(ours(session, args.calls))
                results["erlang peer"].append(erlang_peer(node.name, node.cookie, args.calls))
                rate = erl_call(node.name, node.cookie, args.erl_call_calls)
                if rate is not None:
                    results["erl_call"].append(rate)
    finally:
        node.stop()

    medians = {k: statistics.median(v) for k, v in results.items() if v}
    print(f"rpc round trips/s on {HOST}, median of {args.runs} runs "
          f"({args.calls} calls each; erl_call {args.erl_call_calls}):")
    for name, rate in medians.items():
        spread = f"{min(results[name]):,.0f}-{max(results[name]):,.0f}"
        print(f"  {name:12s} {rate:10,.0f}/s   (runs: {spread})")
    base = medians["microscope"]
    print(f"  ratio microscope / erlang peer: {base / medians['erlang peer']:.2f}x")
    if "erl_call" in medians:
        print(f"  ratio microscope / erl_call:    {base / medians['erl_call']:.1f}x")


if __name__ == "__main__":
    main()
