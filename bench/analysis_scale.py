"""Time travel and save/load on a 1M-event recording.

    .venv/bin/python bench/analysis_scale.py [--events 1000000] [--runs 5] [--compare-only]

Builds a synthetic recording shaped like a busy app (200 processes, 20 of
them GenServers; sends, receives, state transitions, a few restarts) through
the same EventStore.append_batch path the agent uses, then measures:

- the one-time time-travel index;
- snapshot_at at random moments (median and worst; target <= 50 ms);
- save and load (targets <= 2 s each);
- building s.events (term and text are lazy: decoded when read),
  s.messages() and s.explain(), and the peak RSS of the whole run;
- on a call-heavy recording (every payload a fresh gen call or reply):
  s.findings() and s.explain() on fresh sessions, and mic.compare of two
  200,000-event recordings.

There is no peer tool to compare with (nothing else has time travel over
recorded BEAM state); the targets are the ones issue 9 names for 1M events
with 100,000 distinct payloads (--distinct 100000).
"""

from __future__ import annotations

import argparse
import gc
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import microscope_jupyter as mic  # noqa: E402
from microscope_jupyter.saved import OfflineSession  # noqa: E402
from microscope_jupyter.beam.etf import encode  # noqa: E402
from microscope_jupyter.beam.terms import Atom, Pid  # noqa: E402
from microscope_jupyter.store.event_store import EventStore  # noqa: E402
from microscope_jupyter.store.schema import HEADER_DTYPE, KIND_CODES  # noqa: E402

NODE = "bench@host"


def build(n_events: int, distinct: int = 16, batch: int = 2000, seed: int = 7) -> EventStore:
    rng = np.random.default_rng(seed)
    store = EventStore(memory_budget=4 << 30)
    n_procs, n_gen = 200, 20
    pids = [Pid(Atom(NODE), 100 + i, 0, 1) for i in range(n_procs)]
    names = [(pids[i], Atom(f"Elixir.Bench.Worker{i}")) for i in range(n_gen)]
    store.add_source("bench", NODE, 1_700_000_000 * 10**9, 10**9, names)
    defs = [(i + 1, p) for i, p in enumerate(pids)]
    # Payload templates: `distinct` different messages and matching state events.
    messages = [encode((Atom("update"), i)) for i in range(distinct)]
    states = [encode(((Atom("update"), i), {Atom("count"): i, Atom("last"): i},
                      {Atom("count"): i + 1, Atom("last"): i}, Atom("noreply"),
                      Atom("gen_server"))) for i in range(distinct)]
    seq = 0
    ts = 0
    first = True
    while seq < n_events:
        size = min(batch, n_events - seq)
        # Pattern per 4 events: send A->G, receive G, state G, send G->other
        idx = np.arange(seq, seq + size)
        role = idx % 4
        value = (idx // 4) % distinct
        gen = (idx // 4) % n_gen + 1
        other = rng.integers(n_gen + 1, n_procs + 1, size)
        headers = np.zeros(size, dtype=HEADER_DTYPE)
        headers["kind"] = np.select([role == 0, role == 1, role == 2],
                                    [KIND_CODES["send"], KIND_CODES["receive"], KIND_CODES["state"]],
                                    KIND_CODES["send"])
        headers["pid"] = np.where(role == 0, other, gen)
        headers["peer"] = np.where(role == 0, gen, np.where(role == 3, other, 0))
        headers["ts"] = ts + np.arange(size) * 1000
        headers["aux"] = np.where(role == 2, 500, 0)
        blob = bytearray()
        offs = np.zeros(size, dtype=np.int64)
        lens = np.zeros(size, dtype=np.int64)
        for i in range(size):
            payload = states[value[i]] if role[i] == 2 else messages[value[i]]
            offs[i] = len(blob)
            lens[i] = len(payload)
            blob += payload
        headers["pay_off"] = offs
        headers["pay_len"] = lens
        store.append_batch("bench", headers.tobytes(), bytes(blob), defs if first else [])
        first = False
        seq += size
        ts += size * 1000
    return store


def build_calls(n_events: int, batch: int = 2000, seed: int = 11) -> EventStore:
    """A call-heavy recording, as a busy healthy service makes: per 4 events a
    client sends a gen call (a fresh reference each) to one of 20 GenServers,
    which receives it and handles it, sending the reply from inside the
    callback. Every payload differs."""
    from microscope_jupyter.beam.terms import Reference

    rng = np.random.default_rng(seed)
    store = EventStore(memory_budget=4 << 30)
    n_procs, n_gen = 200, 20
    pids = [Pid(Atom(NODE), 100 + i, 0, 1) for i in range(n_procs)]
    names = [(pids[i], Atom(f"Elixir.Bench.Server{i}")) for i in range(n_gen)]
    store.add_source("calls", NODE, 1_700_000_000 * 10**9, 10**9, names)
    defs = [(i + 1, p) for i, p in enumerate(pids)]
    seq = ts = 0
    first = True
    while seq < n_events:
        size = min(batch, n_events - seq) // 4 * 4 or 4
        headers = np.zeros(size, dtype=HEADER_DTYPE)
        blob = bytearray()
        for j in range(0, size, 4):
            k = (seq + j) // 4
            server, client = k % n_gen + 1, int(rng.integers(n_gen + 1, n_procs + 1))
            ref = Reference(Atom(NODE), 1, (k & 0xFFFF, k >> 16, 7))
            call = encode((Atom("$gen_call"), (pids[client - 1], ref), (Atom("get"), k % 50)))
            state = encode(((Atom("$gen_call"), (pids[client - 1], ref), (Atom("get"), k % 50)),
                            {Atom("n"): k}, {Atom("n"): k}, (Atom("reply"), Atom("ok")),
                            Atom("gen_server")))
            reply = encode((ref, Atom("ok")))
            for i, (kind, pid, peer, payload) in enumerate((
                    ("send", client, server, call), ("receive", server, 0, call),
                    ("send", server, client, reply), ("state", server, 0, state))):
                row = headers[j + i]
                row["kind"], row["pid"], row["peer"] = KIND_CODES[kind], pid, peer
                # As gen_server does it: the reply goes out inside the callback, and
                # the callback (its duration in aux) began after its message arrived
                # (one that began before pairs with none).
                row["ts"], row["aux"] = ts + (j + i) * 1000, 1500 if kind == "state" else 0
                row["pay_off"], row["pay_len"] = len(blob), len(payload)
                blob += payload
        store.append_batch("calls", headers.tobytes(), bytes(blob), defs if first else [])
        first = False
        seq += size
        ts += size * 1000
    return store


def calls_figures(n_events: int, runs: int) -> None:
    """findings and explain on a call-heavy recording, and compare of two."""
    store = build_calls(n_events)
    t0 = time.perf_counter()
    OfflineSession(store, {"node": NODE}, None).findings()
    findings_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    text = OfflineSession(store, {"node": NODE}, None).explain().text
    explain_s = time.perf_counter() - t0
    print(f"call-heavy, {n_events:,} events: s.findings() {findings_s:.2f} s, s.explain() "
          f"{explain_s:.2f} s, fresh sessions  (target <= 2 s each at 1M)")
    assert text.startswith("Nothing looks wrong"), text[:300]
    del store
    compare_figure(runs)


def compare_figure(runs: int) -> None:
    """mic.compare of two 200,000-event call-heavy recordings, fresh sessions each run."""
    took = []
    for _ in range(runs):
        a = OfflineSession(build_calls(200_000, seed=1), {"node": NODE}, None)
        b = OfflineSession(build_calls(200_000, seed=2), {"node": NODE}, None)
        t0 = time.perf_counter()
        diff = mic.compare(a, b)
        took.append(time.perf_counter() - t0)
        assert diff.significant().empty, diff.summary()
    print(f"mic.compare of two 200,000-event call-heavy recordings, median of {runs}: "
          f"{statistics.median(took):.2f} s (worst {max(took):.2f} s)  (target <= 3 s)")


def add_crash(store: EventStore, n_events: int) -> None:
    """Worker 0 crashes; then 50 messages are sent to its dead pid."""
    size = 51
    headers = np.zeros(size, dtype=HEADER_DTYPE)
    headers["kind"] = [KIND_CODES["exit"]] + [KIND_CODES["send"]] * 50
    headers["pid"] = [1] + [21] * 50
    headers["peer"] = [0] + [1] * 50
    headers["ts"] = n_events * 1000 + np.arange(size) * 1000
    reason = encode(Atom("boom"))
    message = encode((Atom("update"), -1))
    blob = reason + message * 50
    headers["pay_off"] = [0] + [len(reason) + i * len(message) for i in range(50)]
    headers["pay_len"] = [len(reason)] + [len(message)] * 50
    store.append_batch("bench", headers.tobytes(), blob, [])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--distinct", type=int, default=16,
                        help="distinct payloads (identical ones decode once)")
    parser.add_argument("--compare-only", action="store_true",
                        help="only mic.compare of two 200,000-event recordings")
    args = parser.parse_args()
    if args.compare_only:
        compare_figure(args.runs)
        return
    t0 = time.perf_counter()
    store = build(args.events, args.distinct)
    print(f"{args.distinct:,} distinct payloads")
    print(f"built {len(store):,} events through append_batch in {time.perf_counter() - t0:.1f} s "
          f"({store.memory_bytes / len(store):.0f} B/event in the store)")
    session = OfflineSession(store, {"node": NODE}, None)

    t0 = time.perf_counter()
    tt = session.time_travel()
    index_s = time.perf_counter() - t0
    rng = np.random.default_rng(1)
    samples = []
    for seq in rng.integers(0, args.events, 30):
        t0 = time.perf_counter()
        snap = tt.snapshot_at(int(seq))
        samples.append((time.perf_counter() - t0) * 1000)
    assert len(snap) > 0

    saves, loads = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for run in range(args.runs):
            path = Path(tmp) / f"rec{run}"
            t0 = time.perf_counter()
            session.save(path)
            saves.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            loaded = mic.load(path)
            loads.append(time.perf_counter() - t0)
            assert len(loaded.store) == len(store)
            del loaded   # a second copy of the recording: not what the peak RSS is about
        size = sum(f.stat().st_size for f in (Path(tmp) / "rec0").rglob("*") if f.is_file())
    t0 = time.perf_counter()
    events = session.events
    frame_s = time.perf_counter() - t0
    assert len(events) == args.events
    t0 = time.perf_counter()
    messages = session.messages()
    messages_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    explanation = session.explain()
    explain_s = time.perf_counter() - t0
    assert explanation.text
    fresh = OfflineSession(store, {"node": NODE}, None)
    t0 = time.perf_counter()
    fresh.explain()
    explain_cold_s = time.perf_counter() - t0

    print(f"time-travel index (one time):   {index_s:.2f} s  (target <= 2 s)")
    print(f"snapshot_at, 30 random moments: median {statistics.median(samples):.1f} ms, "
          f"worst {max(samples):.1f} ms  (target <= 50 ms)")
    print(f"save, median of {args.runs}:            {statistics.median(saves):.2f} s  (target <= 2 s), "
          f"{size / 2**20:.0f} MiB on disk")
    print(f"load, median of {args.runs}:            {statistics.median(loads):.2f} s  (target <= 2 s)")
    print(f"s.messages() ({len(messages):,} rows): {messages_s:.2f} s  (target <= 2 s)")
    print(f"building s.events (lazy terms): {frame_s:.2f} s  (target <= 1.5 s)")
    print(f"s.explain(), findings included: {explain_s:.2f} s  (target <= 2 s; messages and "
          f"time travel already built), {explain_cold_s:.2f} s on a fresh session")
    t0 = time.perf_counter()
    shown = events.tail(20)["text"].tolist()
    print(f"reading 20 rows' text:          {(time.perf_counter() - t0) * 1000:.1f} ms "
          f"({len(shown)} rows)")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(f"peak RSS so far:                {peak:.2f} GiB  (two sessions on one store)")
    # The same recording ending in a crash that loses messages: explain must
    # then join every message, on a fresh session (the others are let go).
    del session, fresh, tt, snap, events, messages, explanation
    gc.collect()
    add_crash(store, args.events)
    crashed = OfflineSession(store, {"node": NODE}, None)
    t0 = time.perf_counter()
    text = crashed.explain().text
    print(f"s.explain() after a crash with lost messages, fresh session: "
          f"{time.perf_counter() - t0:.2f} s  (target <= 2 s)")
    assert "crashed" in text and "lost" in text, text
    del crashed
    gc.collect()
    calls_figures(args.events, args.runs)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(f"peak RSS, whole run:            {peak:.2f} GiB")


if __name__ == "__main__":
    main()
