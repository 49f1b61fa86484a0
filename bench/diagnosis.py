"""Diagnosis, measured: does s.explain() name the root cause of each app in the
bug corpus (tests/bugs.py, tests/erlang/bugs/), and stay quiet on the
healthy-idiom corpus (tests/idioms.py)? On OTP 25 and 28.

    .venv/bin/python bench/diagnosis.py [--only NAME[,NAME]] [--runtime otp25|otp28]
                                        [--seconds N] [--no-healthy] [-v] [--json PATH]
                                        [--investigate]

Each bug app runs on a fresh node, recorded with the default trace (plus the
manifest's ``trace`` where the default cannot see the cause), its incident
fired by ``trigger/0``; then the tool is asked the manifest's question. One
line per app and runtime:

- ``named``: the answer names the process and every word of the manifest;
- ``symptom``: it saw the symptom (a symptom word, or some of the words);
- ``missed``: neither. Words still missing are listed.

Then the healthy corpus with the same default trace: a false alarm is a
warning/error finding or a cause where nothing is wrong. Totals per OTP at
the end: named / all, and false alarms / healthy apps. Target: at least 90%
named and no false alarm on each OTP. -v prints each answer in full.

With ``--investigate``: each bug app recorded with the default trace alone
(the manifest's ``trace`` left out), then ``s.investigate(question)`` with
``INVESTIGATE_CEILINGS`` pre-approved; the verdict is on the answer after the
investigation, and each line says how many traces it took (target: every
class named within 3).
Apps run one at a time (2-core machines).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from bugs import BUGS, BugResult, run_bug  # noqa: E402
from idioms import IDIOMS, IdiomResult, run_idiom  # noqa: E402
from nodes import RUNTIMES  # noqa: E402


def bug_line(r: BugResult) -> str:
    parts = [r.verdict]
    if r.verdict != "named":
        missing = list(r.missing) + ([] if r.names_process else ["(the process)"])
        parts.append(f"missing {', '.join(missing)}")
    parts += [f"ERROR {e['stage']}: {e['error'][:80]}" for e in r.errors]
    if r.dropped:
        parts.append(f"dropped {r.dropped}")
    kinds = Counter(c["kind"] for c in r.causes)
    parts.append("causes: " + (", ".join(f"{k} x{n}" if n > 1 else k for k, n in kinds.items())
                               or "none"))
    return "; ".join(parts)


# What the bench pre-approves for an investigation, as a person would set
# ceilings: a few seconds per trace, a bounded event count and rate.
INVESTIGATE_CEILINGS = {"max_events": 300_000, "max_rate": 50_000, "duration_s": 5.0,
                        "payload_limit": 65_536}


def false_alarm(r: IdiomResult) -> bool:
    """The tool raised something on a healthy app (the app's own trouble aside)."""
    return r.app_healthy and (bool(r.findings) or bool(r.causes) or not r.explain_ok)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--only", help="bug names, comma-separated (the healthy corpus is skipped)")
    parser.add_argument("--runtime", choices=RUNTIMES, help="one runtime (default: both)")
    parser.add_argument("--seconds", type=float, default=4.0, help="trace window per bug app")
    parser.add_argument("--no-healthy", action="store_true", help="skip the healthy corpus")
    parser.add_argument("-v", "--verbose", action="store_true", help="each answer in full")
    parser.add_argument("--json", type=Path, help="write every result here")
    parser.add_argument("--investigate", action="store_true", help=(
        "the default trace alone, then s.investigate with the bench's ceilings pre-approved "
        "(INVESTIGATE_CEILINGS); each line gives the traces it took (the healthy corpus is "
        "skipped)"))
    parser.add_argument("--save", type=Path, help="keep each bug app's recording under this "
                        "folder (NAME-RUNTIME/), to diagnose offline (bugs.explain_saved)")
    args = parser.parse_args()

    bugs = BUGS
    if args.only:
        wanted = args.only.split(",")
        unknown = set(wanted) - {b.name for b in BUGS}
        if unknown:
            parser.error(f"unknown bug(s): {', '.join(sorted(unknown))}")
        bugs = [b for b in BUGS if b.name in wanted]
    healthy = [] if args.only or args.no_healthy or args.investigate else IDIOMS
    runtimes = [args.runtime] if args.runtime else RUNTIMES

    print(f"bug corpus: {len(bugs)} apps, {args.seconds:g} s trace each; healthy corpus: "
          f"{len(healthy)} apps; runtimes {', '.join(runtimes)}\n", flush=True)
    found: list[BugResult] = []
    quiet: list[IdiomResult] = []
    started = time.monotonic()
    for runtime in runtimes:
        for bug in bugs:
            if runtime not in bug.runtimes:
                continue
            t0 = time.monotonic()
            r = run_bug(bug, runtime, seconds=args.seconds,
                        save_to=args.save / f"{bug.name}-{runtime}" if args.save else None,
                        investigate=INVESTIGATE_CEILINGS if args.investigate else None)
            found.append(r)
            took = f"{r.traces} trace(s) of investigation, " if args.investigate else ""
            print(f"{runtime}  {bug.name:<22} {bug_line(r)}   "
                  f"[{took}{r.events:,} events, {time.monotonic() - t0:.1f} s]", flush=True)
            if args.investigate and args.verbose:
                for step in r.path:
                    print(f"        step: {step[:300]}")
            if args.verbose:
                print("        Q: " + r.question)
                for line in r.answer.splitlines():
                    print("        " + line[:400])
                for line in r.node_log[:2]:
                    print(f"        node log: {line[:200]}")
        for idiom in healthy:
            if runtime not in idiom.runtimes:
                continue
            r = run_idiom(idiom, runtime, seconds=3.0, save_to=args.save / f"healthy-{idiom.name}-{runtime}"
                          if args.save else None)
            quiet.append(r)
            if false_alarm(r) or args.verbose:
                alarm = "; ".join(r.problems()) or "ok"
                print(f"{runtime}  healthy {idiom.name:<17} {alarm[:200]}", flush=True)
        print(flush=True)

    print("totals")
    for runtime in runtimes:
        rs = [r for r in found if r.runtime == runtime]
        hs = [r for r in quiet if r.runtime == runtime]
        if not rs and not hs:
            continue
        v = Counter(r.verdict for r in rs)
        named = f"{v['named']}/{len(rs)} named ({100 * v['named'] / len(rs):.0f}%)" if rs else ""
        traces = Counter(r.traces for r in rs if r.verdict == "named" and r.traces is not None)
        took = ("; named after " + ", ".join(f"{n} trace(s): {traces[n]}" for n in
                                             sorted(traces)) if args.investigate else "")
        print(f"  {runtime}: {named}, {v['symptom']} symptom only, {v['missed']} missed, "
              f"tool errors in {sum(bool(r.errors) for r in rs)}{took}"
              + (f"; false alarms {sum(false_alarm(r) for r in hs)}/{len(hs)} healthy apps"
                 if hs else ""))
    print(f"  {len(found) + len(quiet)} runs in {time.monotonic() - started:.0f} s")
    if args.json:
        args.json.write_text(json.dumps([dataclasses.asdict(r) for r in found + quiet],
                                        indent=1, default=str))


if __name__ == "__main__":
    main()
