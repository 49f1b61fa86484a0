"""Re-record tests/data/etf_captures.txt from a real node.

    .venv/bin/python tests/data/record_etf_captures.py

Each line is ``label<TAB>hex`` of ``term_to_binary`` output captured from
OTP 25 and OTP 28, the seed corpus of the decoder fuzz test.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE.parent / "integration"))

import microscope_jupyter as mic  # noqa: E402
from test_beam_etf_node import NODE_BUILT  # noqa: E402
from nodes import start_node  # noqa: E402


def main() -> None:
    lines = []
    for runtime in ("otp25", "otp28"):
        node = start_node(runtime, prefix="capture")
        try:
            with mic.attach(node.name, cookie=node.cookie) as s:
                for label, src in sorted(NODE_BUILT.items()):
                    for opts in ("[]", "[compressed]", "[{minor_version, 1}]"):
                        raw = s.eval_erlang(f"term_to_binary(begin {src} end, {opts}).")
                        lines.append(f"{runtime}:{label}:{opts}\t{raw.hex()}")
        finally:
            node.stop()
    (HERE / "etf_captures.txt").write_text("\n".join(lines) + "\n")
    print(f"wrote {len(lines)} captures")


if __name__ == "__main__":
    main()
