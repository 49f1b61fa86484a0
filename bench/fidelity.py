"""Healthy apps, held to the node's own figures: what the tool says about the
healthy-idiom corpus (tests/idioms.py, tests/erlang/idioms/) on OTP 25 and 28.

    .venv/bin/python bench/fidelity.py [--only NAME[,NAME]] [--runtime otp25|otp28]
                                       [--seconds N] [-v] [--json PATH]

Each idiom is a small OTP app with nothing wrong, run on a fresh node under
steady traffic and recorded with the default trace (every process, the
system monitor taken) for --seconds; meanwhile a second hidden node samples
the app's own message_queue_len every ~75 ms. One line per idiom and
runtime: `ok`, or what the tool got wrong:

- a warning/error finding (kind x occurrences), or a cause in s.explain();
- mailbox: samples where time travel's mailbox_len is off the node's own by
  more than max(10%, 3), out of all compared, and the worst;
- events dropped; an error the tool raised (ERROR stage: ...); a warning
  it logged (warned: ..., not counted against ok).

`app!` marks a run where the app itself was not healthy by the node's own
account (a crash or error report in its log, or a mailbox past 50): then a
finding is not a false alarm. Totals per OTP at the end; -v prints each
problem in full under its line; --json keeps every result.
Idioms run one at a time (2-core machines).
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

from idioms import IDIOMS, IdiomResult, run_idiom  # noqa: E402
from nodes import RUNTIMES  # noqa: E402


def verdict(r: IdiomResult) -> str:
    parts = [f"ERROR {e['stage']}: {e['error'][:90]}" for e in r.errors]
    for kind, rows in r.findings_by_kind().items():
        parts.append(f"{kind} x{sum(f['count'] for f in rows)}")
    causes = Counter(c["kind"] for c in r.causes)
    parts += [f"cause {kind} x{n}" for kind, n in causes.items()]
    if r.explain_text and not r.causes and not r.explain_ok:
        parts.append(f"explain: {r.explain_text[:60]}")
    m = r.mailbox
    if m.mismatches:
        w = m.worst
        parts.append(f"mailbox {m.mismatches}/{m.samples} off (worst {w['name'] or w['pid']}: "
                     f"node {w['node']}, shown {w['shown']})")
    elif not r.errors and m.samples == 0:
        parts.append("mailbox: no sample inside the recording")
    if r.dropped:
        parts.append(f"dropped {r.dropped}")
    if r.tool_warnings:
        parts.append(f"warned x{len(r.tool_warnings)}: {r.tool_warnings[0][:70]}...")
    if not r.app_healthy:
        peak = max(r.peak_mailbox.values(), default=0)
        parts.append(f"app! ({len(r.node_problems)} log reports, peak mailbox {peak})")
    return "; ".join(parts) if parts else "ok"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--only", help="idiom names, comma-separated")
    parser.add_argument("--runtime", choices=RUNTIMES, help="one runtime (default: both)")
    parser.add_argument("--seconds", type=float, default=3.0, help="trace window per run")
    parser.add_argument("-v", "--verbose", action="store_true", help="each problem in full")
    parser.add_argument("--json", type=Path, help="write every result here")
    args = parser.parse_args()

    idioms = IDIOMS
    if args.only:
        wanted = args.only.split(",")
        unknown = set(wanted) - {i.name for i in IDIOMS}
        if unknown:
            parser.error(f"unknown idiom(s): {', '.join(sorted(unknown))}")
        idioms = [i for i in IDIOMS if i.name in wanted]
    runtimes = [args.runtime] if args.runtime else RUNTIMES

    print(f"healthy idioms: {len(idioms)} apps, {args.seconds:g} s trace each, "
          f"runtimes {', '.join(runtimes)}\n", flush=True)
    results: list[IdiomResult] = []
    started = time.monotonic()
    for runtime in runtimes:
        for idiom in idioms:
            if runtime not in idiom.runtimes:
                continue
            t0 = time.monotonic()
            r = run_idiom(idiom, runtime, seconds=args.seconds)
            took = time.monotonic() - t0
            results.append(r)
            print(f"{runtime}  {idiom.name:<17} {verdict(r)}   "
                  f"[{r.events:,} events, {r.processes:,} procs, {took:.1f} s]", flush=True)
            if args.verbose:
                for line in r.problems():
                    print(f"        {line}")
                for line in r.tool_warnings:
                    print(f"        tool warning: {line}")
                for line in r.node_problems[:3]:
                    print(f"        node log: {line}")
        print(flush=True)

    print("totals")
    for runtime in runtimes:
        rs = [r for r in results if r.runtime == runtime]
        if not rs:
            continue
        kinds = Counter(k for r in rs for k in r.findings_by_kind())
        cause_kinds = Counter(k for r in rs for k in {c["kind"] for c in r.causes})
        print(f"  {runtime}: {sum(r.ok for r in rs)}/{len(rs)} ok; "
              f"false findings in {sum(bool(r.findings) for r in rs)} "
              f"({', '.join(f'{k} {n}' for k, n in kinds.most_common()) or 'none'}); "
              f"causes in {sum(bool(r.causes) for r in rs)} "
              f"({', '.join(f'{k} {n}' for k, n in cause_kinds.most_common()) or 'none'}); "
              f"mailbox mismatches in {sum(r.mailbox.mismatches > 0 for r in rs)} "
              f"({sum(r.mailbox.mismatches for r in rs)}/{sum(r.mailbox.samples for r in rs)} "
              f"samples); dropped in {sum(bool(r.dropped) for r in rs)}; "
              f"tool errors in {sum(bool(r.errors) for r in rs)}; "
              f"tool warnings in {sum(bool(r.tool_warnings) for r in rs)}; "
              f"apps not healthy {sum(not r.app_healthy for r in rs)}")
    print(f"  {len(results)} runs in {time.monotonic() - started:.0f} s")
    if args.json:
        args.json.write_text(json.dumps([dataclasses.asdict(r) for r in results], indent=1,
                                        default=str))


if __name__ == "__main__":
    main()
