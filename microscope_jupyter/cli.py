"""Command line: ``python -m microscope_jupyter.cli demo``.

For now the demo boots a bare local Erlang node with a random cookie,
attaches to it, prints what it sees, and shuts the node down. (The bundled
Mix demo app and the quickstart notebook take its place later.)
"""

from __future__ import annotations

import argparse
import secrets
import shutil
import subprocess
import sys
import time

from .beam import epmd
from .beam.node import split_node_name
from .errors import MicroscopeError
from .session import attach


def _boot_bare_node() -> tuple[subprocess.Popen, str, str]:
    erl = shutil.which("erl")
    if erl is None:
        raise SystemExit("erl is not installed: run `apt-get install -y erlang-nox` (as root) "
                         "and try again")
    alive = f"microscope_demo_{secrets.token_hex(3)}"
    cookie = secrets.token_hex(16)
    proc = subprocess.Popen([erl, "-sname", alive, "-setcookie", cookie, "-noshell", "-noinput"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            stdin=subprocess.DEVNULL, start_new_session=True)
    _, host = split_node_name(alive)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if alive in epmd.names(host, timeout=1.0):
                return proc, f"{alive}@{host}", cookie
        except MicroscopeError:
            pass
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    proc.kill()
    raise SystemExit("the demo node did not start; try `erl -sname test` to see why")


def demo() -> int:
    proc, node, cookie = _boot_bare_node()
    try:
        with attach(node, cookie=cookie) as session:
            info = session.node_info()
            print(f"Attached to {node}: OTP {info['otp_release']} (erts {info['erts_version']}), "
                  f"{info['process_count']} processes, {info['schedulers']} schedulers")
            frame = session.processes().sort_values("memory", ascending=False)
            print("\nLargest processes by memory:")
            print(frame.head(10).to_string(index=False))
        print(f"\nDetached from {node}.")
    finally:
        proc.kill()
        proc.wait()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="microscope", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("demo", help="boot a local node, attach, and show what is inside")
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
