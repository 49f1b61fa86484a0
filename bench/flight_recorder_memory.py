"""What a flight recorder holds on the node under a steady load, against its max_bytes.

    .venv/bin/python bench/flight_recorder_memory.py [--seconds 20] [--feeders 3]

On a fresh OTP 25 node running tests/erlang/mic_ledger (a supervised
GenServer), --feeders processes each make a call every millisecond while a
recorder of the ledger's supervisor runs, for each max_bytes in turn. Every
250 ms: the memory of every process running agent code plus the binaries
they hold (each once), as a separate observer would read it, and the node's
total. Prints the peaks against max_bytes.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import microscope_jupyter as mic  # noqa: E402
from nodes import AGENT_MEMORY, load_test_module, start_node  # noqa: E402

FEEDER = "spawn(fun L() -> catch mic_ledger:deposit(1), timer:sleep(1), L() end)."


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--feeders", type=int, default=3)
    parser.add_argument("--sizes", default="1000000,4000000,16000000")
    args = parser.parse_args()
    node = start_node("otp25", prefix="benchfrm")
    try:
        with mic.attach(node.name, cookie=node.cookie) as s:
            load_test_module(s, "mic_ledger", Path(tempfile.mkdtemp()))
            s.rpc("mic_ledger", "start", [])
            base = s.rpc("erlang", "memory", [mic.Atom("total")])
            for size in (int(x) for x in args.sizes.split(",")):
                fr = s.flight_recorder("mic_ledger_sup", max_bytes=size, max_age="1h", until="1h")
                feeders = [s.eval_erlang(FEEDER) for _ in range(args.feeders)]
                ours, total = [], []
                started = time.monotonic()
                while time.monotonic() - started < args.seconds:
                    ours.append(s.eval_erlang(AGENT_MEMORY))
                    total.append(s.rpc("erlang", "memory", [mic.Atom("total")]))
                    time.sleep(0.25)
                status = fr.status()
                for feeder in feeders:
                    s.eval_erlang("exit(F, kill).", F=feeder)
                fr.remove()
                print(f"max_bytes {size:>12,}: agent processes + binaries peak {max(ours):>12,} "
                      f"({(max(ours) - size) / 1e6:+.2f} MB over); held {status['held_bytes']:,}; "
                      f"ring {status['events']:,} events, {status['evicted']:,} evicted; "
                      f"node total peak +{(max(total) - base) / 1e6:.1f} MB", flush=True)
    finally:
        node.stop()


if __name__ == "__main__":
    main()
