"""What processes cost the node, as causes: big messages copied on every send,
long stretches on a scheduler, large heaps, each tied to the work in hand.

    big_messages(facts)      # [Cause("large_messages", ...)]
    scheduler_hogs(facts)    # [Cause("long_schedule", ...)]
    heap_spikes(facts)       # [Cause("large_heap", ...)]
    atom_makers(facts)       # [Cause("atom_growth", ...)]
    binary_hoards(facts)     # [Cause("refc_binary", ...)]

The sizes are the agent's (a payload past ``payload_limit`` is kept as its
size alone: ``#Truncated<N bytes>``, the external term size, an estimate of
the words a send copies); long schedules and large heaps are the node's own
system monitor's. What each process was doing then is the callback in hand:
the process's next state event after the monitor's report. Atoms made from
data are seen in a call trace of the BIFs that make them (their results).
The refc binaries a process keeps alive are the sampler's reading of
``process_info(P, binary)``: the node's own figure.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..render.names import known_as
from ..store.otp import message_shape
from .detector_kit import BINARY_BYTES, HEAP_WORDS, Cause
from .facts import Facts

__all__ = ["big_messages", "scheduler_hogs", "hogs_scheduler", "heap_spikes", "atom_makers",
           "binary_hoards", "BIG_MESSAGE_BYTES"]

# The BIFs that make a new atom of whatever they are given (the _existing_ ones do not).
ATOM_MAKERS = (":erlang.binary_to_atom/2", ":erlang.binary_to_atom/1", ":erlang.list_to_atom/1",
               "erlang:binary_to_atom/2", "erlang:binary_to_atom/1", "erlang:list_to_atom/1")
NEW_ATOMS_AT_LEAST = 50

BIG_MESSAGE_BYTES = 64 * 1024     # a message this big costs a copy worth naming
BIG_MESSAGES_AT_LEAST = 5         # ...when sent this many times: a hot path, not a one-off


def _kb(size: float) -> str:
    return f"{size / 1024:,.0f} KB" if size < 1024 * 1024 else f"{size / 1024 ** 2:,.1f} MB"


def big_messages(facts: Facts) -> list[Cause]:
    frame = facts.store.frame()
    sends = frame[(frame["kind"] == "send") & frame["_truncated"].to_numpy(dtype=bool)]
    if len(sends) < BIG_MESSAGES_AT_LEAST:
        return []
    sizes = np.array([t[1] if isinstance(t, tuple) and len(t) == 2 else 0
                      for t in sends["term"]], dtype=np.int64)
    sends = sends.assign(size=sizes)
    sends = sends[sends["size"] >= BIG_MESSAGE_BYTES]
    heaps = _heap_peaks(frame)
    named = facts.store.names().last_names()
    out = []
    for pid, group in sends.groupby("pid", sort=False):
        if len(group) < BIG_MESSAGES_AT_LEAST:
            continue
        name = next((n for n in group["name"] if isinstance(n, str)), None)
        who = known_as(name, pid)
        receivers = [r for r in dict.fromkeys(
            named.get(int(g)) or text for g, text in zip(group["_peer"], group["peer"]))
            if isinstance(r, str)]
        median = float(group["size"].median())
        span = (group["ts"].iloc[-1] - group["ts"].iloc[0]).total_seconds()
        rate = f", {len(group) / span:.0f} a second" if span > 0.5 else ""
        heap = [f"{r} reached a heap of {heaps[r]:,} words" for r in receivers if r in heaps]
        summary = (f"{who} sent {len(group)} messages of about {_kb(median)} each{rate} "
                   f"(the external size, as the agent measured them) to "
                   f"{', '.join(receivers[:4])}: every send copies the whole term into the "
                   "receiver's heap, and the receiver collects it again"
                   + (f" ({'; '.join(heap[:2])}, the node's system monitor)" if heap else "")
                   + ". Send only what the receiver needs (a key, the few fields it reads) and "
                   "keep the big data where it is read in place: ETS, persistent_term, or "
                   "the process that owns it.")
        out.append(Cause("large_messages", 0.8, summary,
                         [int(s) for s in group["seq"].head(20)],
                         [p for p in [name or pid] + receivers[:4] if p]))
    return out


def _heap_peaks(frame: pd.DataFrame) -> dict[str, int]:
    """Name (else pid) -> the largest heap the system monitor reported for it."""
    heaps = frame[frame["kind"] == "large_heap"]
    out: dict[str, int] = {}
    for pid, name, words in zip(heaps["pid"], heaps["name"], heaps["_aux"]):
        key = name if isinstance(name, str) else pid
        out[key] = max(out.get(key, 0), int(words))
    return out


def _in_hand(frame: pd.DataFrame, rows: pd.DataFrame) -> list[tuple[str, str] | None]:
    """For each monitor report, the (callback, message) its process was in:
    the process's next state event (a callback is recorded when it returns)."""
    states = frame[frame["kind"] == "state"]
    by_pid = {pid: group for pid, group in states.groupby("pid", sort=False)}
    out = []
    for pid, seq in zip(rows["pid"], rows["seq"]):
        group = by_pid.get(pid)
        if group is None:
            out.append(None)
            continue
        seqs = group["seq"].to_numpy()
        k = int(np.searchsorted(seqs, seq))
        if k >= len(seqs):
            out.append(None)
            continue
        term = group["term"].iloc[k]
        if not isinstance(term, dict):
            out.append(None)
            continue
        out.append((str(term.get("callback")), message_shape(term.get("message"))))
    return out


# The system monitor's long_schedule is wall-clock time between schedule in and
# out: on a busy machine the OS can preempt the VM's scheduler thread for tens
# of ms, and the process in hand is blamed once. A process that hogs its
# scheduler does it again and again, or for long.
HOG_REPORTS, HOG_MS = 3, 500


def hogs_scheduler(reports: pd.DataFrame) -> bool:
    """Whether a process's long_schedule reports show a hog, not a preemption."""
    return len(reports) >= HOG_REPORTS or float(reports["_duration_ns"].max()) / 1e6 >= HOG_MS


def scheduler_hogs(facts: Facts) -> list[Cause]:
    frame = facts.store.frame()
    rows = frame[frame["kind"] == "long_schedule"]
    out = []
    for pid, group in rows.groupby("pid", sort=False):
        if not hogs_scheduler(group):
            continue
        name = next((n for n in group["name"] if isinstance(n, str)), None)
        who = known_as(name, pid)
        worst = float(group["_duration_ns"].max()) / 1e6
        doing = [d for d in _in_hand(frame, group) if d]
        where = ""
        if doing:
            counts = pd.Series([f"{c} of {shape}" for c, shape in doing]).value_counts()
            top, n = counts.index[0], int(counts.iloc[0])
            where = (f", each time inside {top}" if n == len(group)
                     else f", {n} of those times inside {top}")
        times = f" {len(group)} times" if len(group) > 1 else ""
        out.append(Cause(
            "long_schedule", 0.75,
            f"{who} ran up to {worst:.0f} ms without yielding its scheduler{times} (the node's "
            f"system monitor){where}: one uninterruptible piece of work, a BIF or NIF call "
            "that does not yield, holds the scheduler, and every other process queued on it "
            "waits that long. Split the work into pieces, move it off the hot process, or "
            f"trace that callback's calls (s.trace(\"{name or pid}\", modules=[...])) to see "
            "which call it is.",
            [int(s) for s in group["seq"].head(20)], [name or pid]))
    return out


def heap_spikes(facts: Facts) -> list[Cause]:
    """A large heap reported while a process handled a particular message."""
    frame = facts.store.frame()
    rows = frame[frame["kind"] == "large_heap"]
    out = []
    for pid, group in rows.groupby("pid", sort=False):
        name = next((n for n in group["name"] if isinstance(n, str)), None)
        doing = [d for d in _in_hand(frame, group) if d]
        where = f" while handling {doing[0][1]} in {doing[0][0]}" if doing else ""
        times = f" ({len(group)} times)" if len(group) > 1 else ""
        out.append(Cause(
            "large_heap", 0.5,
            f"{known_as(name, pid)} reached an allocated heap of {int(group['_aux'].max()):,} "
            f"words{times}{where} (the node's system monitor).",
            [int(s) for s in group["seq"].head(20)], [name or pid]))
    return out


def atom_makers(facts: Facts) -> list[Cause]:
    """A process that keeps making atoms it never made before from data: the
    atom table is never collected, and the node dies when it is full."""
    calls = facts.calls()
    made = calls[calls["mfa"].isin(ATOM_MAKERS) & (calls["status"] == "returned")]
    out = []
    for pid, group in made.groupby("pid", sort=False):
        seen: set = set()
        new_at = []
        for result, ts in zip(group["result"], group["started_at"]):
            if result not in seen:
                seen.add(result)
                new_at.append(ts)
        if len(seen) < NEW_ATOMS_AT_LEAST:
            continue
        first, last = new_at[0], new_at[-1]
        half = first + (group["started_at"].iloc[-1] - first) / 2
        late = sum(t >= half for t in new_at)
        if late < 0.25 * len(new_at):          # a fixed vocabulary learnt at the start
            continue
        name = next((n for n in group["name"] if isinstance(n, str)), None)
        span = max((last - first).total_seconds(), 1e-3)
        bifs = ", ".join(sorted({str(m).lstrip(":").replace(".", ":", 1)
                                 for m in group["mfa"]}))
        examples = ", ".join(str(t) for t in list(group["result_text"].drop_duplicates())[-3:])
        out.append(Cause(
            "atom_growth", 0.8,
            f"{known_as(name, pid)} made {len(seen):,} distinct atoms from data with {bifs} in "
            f"{span:.1f} s (about {len(seen) / span:,.0f} new a second, {late:,} of them in the "
            f"second half: still growing; the latest {examples}). Atoms are never garbage "
            "collected and the atom table is bounded (1,048,576 by default): the node dies when "
            "it fills. Use binary_to_existing_atom/2 (String.to_existing_atom/1) against a known "
            "set, or keep such values as binaries.",
            [int(s) for s in group["call_seq"].head(20)], [name or pid]))
    return out


# A process whose refc binaries climb past this and are never let go of
# within the trace; a process that only passes binaries on lets go of them
# at its next collection (a drop between samples).
HOARD_BYTES = 2 * 1024 ** 2
HOARD_OVER_HEAP = 8        # ...and they dwarf its own heap: too small to be collected
HOARD_SAMPLES = 3


def binary_hoards(facts: Facts) -> list[Cause]:
    """A long-lived process that keeps refc binaries alive: their bytes climb
    sample after sample while its heap stays small."""
    frame = facts.store.frame()
    vitals = frame[frame["kind"] == "vitals"]
    read = np.array([isinstance(t, dict) and BINARY_BYTES in t for t in vitals["term"]],
                    dtype=bool)
    vitals = vitals[read]
    out = []
    for pid, group in vitals.groupby("pid", sort=False):
        if len(group) < HOARD_SAMPLES:
            continue
        held = np.array([t[BINARY_BYTES] for t in group["term"]], dtype=float)
        first, last = held[0], held[-1]
        heap_bytes = 8 * float(group["term"].iloc[-1].get(HEAP_WORDS, 0))
        if (last < HOARD_BYTES or last - first < HOARD_BYTES / 2
                or last < HOARD_OVER_HEAP * heap_bytes
                or (held[1:] < 0.75 * held[:-1]).any()):
            continue
        name = next((n for n in group["name"] if isinstance(n, str)), None)
        span = (group["ts"].iloc[-1] - group["ts"].iloc[0]).total_seconds()
        handled = _handled(frame, pid)
        out.append(Cause(
            "refc_binary", 0.75,
            f"{known_as(name, pid)} keeps refc binaries alive: the binaries it references grew "
            f"from {_kb(first)} to {_kb(last)} in {span:.1f} s (about {_kb((last - first) / span)}"
            f" a second; the node's own process_info(binary), read {len(group)} times) and "
            f"were never let go of, while its own heap is {_kb(heap_bytes)}"
            + (f"; it handled {handled}" if handled else "")
            + ". A binary over 64 bytes lives off the heap, shared by reference: a small "
            "sub-binary kept from it (a header, an id, a field matched out of a packet and "
            "stored in the state) keeps the whole binary alive, and a small heap is collected "
            "too rarely to drop the ones only passed on. Keep a copy of the part you need "
            "(binary:copy/1), or collect after bursts (:erlang.garbage_collect/0, "
            "hibernate).",
            [int(s) for s in group["seq"]][-20:], [name or pid]))
    return out


def _handled(frame: pd.DataFrame, pid: str) -> str:
    """The callback and message shape a process handled most in the trace."""
    states = frame[(frame["kind"] == "state") & (frame["pid"] == pid)]
    doing = pd.Series([f"{t.get('callback')} of {message_shape(t.get('message'))}"
                       for t in states["term"] if isinstance(t, dict)])
    if not len(doing):
        return ""
    counts = doing.value_counts()
    return f"{int(counts.iloc[0]):,} {counts.index[0]}"
