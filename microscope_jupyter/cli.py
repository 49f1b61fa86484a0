"""Command line: ``python -m microscope_jupyter.cli demo``.

Boots the bundled demo app as a local node, traces the seed scenario
(WorkerA sends a counter to WorkerB on every tick), prints what the trace
shows, and stops the node. The quickstart notebook takes its place later.
"""

from __future__ import annotations

import argparse
import sys
import time

from .errors import MicroscopeError


def demo(seconds: float = 1.0) -> int:
    """Boot the demo app, trace the seed scenario, and show what the trace says."""
    import pandas as pd

    from . import demo as boot_demo

    session = boot_demo()
    try:
        info = session.node_info()
        print(f"Attached to {session.node}: OTP {info['otp_release']}, Elixir "
              f"{info['elixir_version']}, {info['process_count']} processes")
        with session.trace() as recording:
            session.demo.start_updates(20)
            time.sleep(seconds)
            session.demo.stop_updates()
        status = recording.status()
        print(f"Recorded {status['events']:,} events ({status['dropped']} dropped) from "
              f"{status['traced_processes']} processes, {status['state_hooks']} GenServers hooked")

        with pd.option_context("display.width", 160, "display.max_colwidth", 60):
            messages = session.messages()
            updates = messages[messages["text"].str.startswith("{:update", na=False)]
            print("\nUpdates from WorkerA to WorkerB:")
            print(updates["status"].value_counts().to_string())
            print(updates[["send_seq", "sender_name", "receiver", "receiver_name", "text",
                           "status"]].iloc[7:14].to_string(index=False))
            events = session.events
            crashes = events[events["kind"] == "exit"]
            print("\nExits:")
            print(crashes[["seq", "pid", "name", "text"]].to_string(index=False))
            states = session.states("Demo.WorkerB")
            print(f"\nWorkerB state transitions: {len(states)}; last:")
            print(states[["seq", "pid", "callback", "message", "after"]].tail(3).to_string(index=False))
            print(f"\nThe app's own counters: {session.demo.stats()}")
    finally:
        session.detach()
    print("\nDetached; the demo node is stopped.")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="microscope", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("demo", help="boot the demo app, trace it, and show what happened")
    args = parser.parse_args(argv)
    try:
        if args.command == "demo":
            return demo()
    except MicroscopeError as exc:
        print(f"microscope: {exc}", file=sys.stderr)
        return 1
    return 2


if __name__ == "__main__":
    sys.exit(main())
