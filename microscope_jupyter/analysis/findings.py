"""Findings: what looks wrong in a recording, each with its evidence.

    s.findings()   # kind, severity, pid, name, summary, first_seq, evidence

Detected from the events: ``crash`` (an exit with an abnormal reason),
``restart`` (a name taken again by a new pid after its holder died),
``lost_message`` (sent to a dead pid, or the receiver died with it unread),
``call_timeout`` (a process died of a call that timed out), ``deadlock``
(unanswered gen calls that wait on each other in a cycle), ``mailbox_growth``
(a mailbox that reached ``MAILBOX_GROWTH`` messages), ``slow_handler``
(a callback that ran longer than ``SLOW_HANDLER_MS``), ``long_gc``,
``long_schedule`` and ``large_heap`` (from the node's system monitor), and
``trace_gap`` for dropped spans, and ``unhandled_message`` (a GenServer or
gen_statem crashed because no clause of its callback matched a message).
``state_violation`` rows come from ``s.expect``. Kinds are never renamed,
only added.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..beam.terms import Atom
from ..render.elixir import render
from ..render.names import format_mfa, known_as
from ..store import joins
from ..store.columns import starts_with
from ..store.schema import KIND_CODES
from ..store.otp import (GEN_CALL_HEADS, MESSAGE_ARG, call_tag_bytes, is_call_timeout, message_kind,
                         normal_exit, unmatched_callback)

from .detector_kit import MAILBOX_GROWTH
from .replies import answered
from .footprint import hogs_scheduler
from .unread import died_unread
from .facts import Facts


__all__ = ["Finding", "FINDING_COLUMNS", "detect", "findings_table", "findings_frame"]

SLOW_HANDLER_MS = 100.0
_MAILBOX = KIND_CODES["mailbox"]
FINDING_COLUMNS = ["kind", "severity", "pid", "name", "summary", "first_seq", "evidence"]


@dataclass
class Finding:
    kind: str
    severity: str
    pid: str | None
    name: str | None
    summary: str
    first_seq: int
    evidence: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str):   # a missing name read from a frame is NaN
            self.name = None

    def row(self) -> tuple:
        return (self.kind, self.severity, self.pid, self.name, self.summary, self.first_seq,
                list(self.evidence))


def detect(facts: Facts) -> list[Finding]:
    events = facts.events
    out: list[Finding] = []
    exits = events[events["kind"] == "exit"]
    for row in exits.itertuples(index=False):
        if normal_exit(row.term):
            continue
        who = known_as(row.name, row.pid)
        out.append(Finding("crash", "error", row.pid, row.name,
                           f"{who} crashed: {_reason_text(row.term, row.text, facts.syntax)}",
                           int(row.seq), [int(row.seq)]))
    successor: dict[str, tuple[int, str]] = {}  # dead pid -> (seq, pid that took its name)
    ended = {row.pid: row.term for row in exits.itertuples(index=False)}
    died_at = {row.pid: int(row.seq) for row in exits.itertuples(index=False)}
    store = facts.store
    for seq, new, name, old in store.names().successions():
        old_pid, new_pid = store.id_text(old), store.id_text(new)
        if old_pid not in ended:      # let go of the name and lived on: no restart
            continue
        successor.setdefault(old_pid, (seq, new_pid))
        # a process that ended normally and was started again (a connection
        # recycled, a child restarted on purpose) is no warning
        calm = normal_exit(ended[old_pid])
        out.append(Finding("restart", "info" if calm else "warning", new_pid, name,
                           f"{name} was restarted as {new_pid} after {old_pid} "
                           + ("ended normally" if calm else "died"),
                           seq, [died_at[old_pid], seq]))
    out += _lost_messages(facts, successor, ended)
    out += _unhandled_messages(events, exits, facts.store.syntax)
    out += _timeouts(exits, facts.store.syntax)
    out += _deadlocks(facts)
    out += _mailbox_growth(facts)
    out += _slow_handlers(facts)
    out += _monitor_findings(facts)
    gaps = events[events["kind"] == "dropped"]
    if len(gaps):
        total = int(gaps["term"].sum())
        out.append(Finding("trace_gap", "warning", None, None,
                           f"the agent dropped {total} events under load; the recording has gaps",
                           int(gaps["seq"].iloc[0]), [int(s) for s in gaps["seq"]]))
    return out


def _lost_messages(facts: Facts, successor: dict[str, tuple[int, str]],
                   ended: dict) -> list[Finding]:
    """Sent to a dead pid, or delivered and still unread when the receiver died
    (a call request aside: its caller's monitor tells it).

    One or two messages that reach a process after it ended normally, with
    no successor under its name, are a late notification (a stream's
    ``{:stop, ref}``, a reply to a caller that moved on): said, at ``info``."""
    if not joins.may_have_lost(facts.store):
        return []   # decided from the headers: no need to join every message
    out = []
    messages = joins.lost_candidates(facts.store)
    lost = messages[messages["status"] == "lost"].copy()
    # Delivered but never handled: still in the mailbox when the receiver died.
    unread = died_unread(facts)
    if unread:
        lost = pd.concat([lost, messages[messages["receive_seq"].isin(unread)]])
    # A call request is never lost in silence: gen calls monitor the callee, so
    # a caller whose request died unread (or reached a dead pid) gets the DOWN
    # and its call exits with the reason (noproc, normal, ...): it knows.
    lost = lost[[message_kind(t) != "call" for t in lost["term"]]]
    if lost.empty:
        return []
    # A message from an untraced sender has a receive but no send: it counts from its arrival.
    lost["_seq"] = lost["send_seq"].fillna(lost["receive_seq"]).astype("int64")
    lost = lost.sort_values("_seq", kind="stable")
    # One row per receiver: the name it had (at a receive, or as addressed) is
    # the first one known among its lost messages.
    for receiver, group in lost.groupby("receiver", dropna=False, sort=False):
        senders = sorted({str(s) for s in group["sender_name"].fillna(group["sender"])
                          .fillna("an untraced sender")})
        first = group.iloc[0]
        name = next((n for n in group["receiver_name"] if isinstance(n, str)), None)
        in_mailbox = int(group["receive_seq"].isin(unread).sum())
        how = "the receiver was dead"
        if in_mailbox:
            how = (f"{in_mailbox} reached it but were never handled before it died, "
                   f"{len(group) - in_mailbox} were sent after it died")
        summary = (f"{len(group)} message(s) from {', '.join(senders)} to {name or receiver} "
                   f"were lost: {how} (first: {first['text']})")
        if receiver in successor:
            # The name lives on in a new process, yet these went to the old pid.
            taken_at, new_pid = successor[receiver]
            late = int((group["send_seq"] > taken_at).sum())
            if late:
                summary += (f". {late} of them were sent after {new_pid} had taken the name "
                            f"{name or receiver}: the sender holds a stale pid. Send to the name, "
                            "or monitor the process and look it up again when it goes down.")
        severity = "error"
        if (receiver not in successor and len(group) <= 2
                and receiver in ended and normal_exit(ended[receiver])):
            # a process stopped on purpose (normal, shutdown) with a message or two
            # in flight or still queued: a late notification, not a loss to chase
            severity = "info"
            what = (f"were still in the mailbox of {name or receiver} when it ended normally"
                    if in_mailbox else f"reached {name or receiver} after it had ended normally")
            summary = (f"{len(group)} message(s) from {', '.join(senders)} {what}: a late "
                       f"notification, harmless unless the sender counted on it (first: "
                       f"{first['text']})")
        out.append(Finding("lost_message", severity, receiver, name, summary,
                           int(first["_seq"]), [int(s) for s in group["_seq"]]))
    return out


def findings_table(facts: Facts, grouped: bool = True) -> pd.DataFrame:
    """What the recording shows wrong, and what broke the user's expectations
    (``facts.expectation_findings``), each once: see ``findings_frame``."""
    detected = facts.cached("findings", lambda: detect(facts))
    seen, unique = set(), []
    for f in detected + facts.expectation_findings:
        key = (f.kind, f.first_seq, f.summary)
        if key not in seen:
            seen.add(key)
            unique.append(f)
    return findings_frame(unique, grouped)


def findings_frame(findings: list[Finding], grouped: bool = True) -> pd.DataFrame:
    """One row per finding; ``grouped``: one per (kind, process), with how
    many times it happened, its first and last seq and all the evidence."""
    if grouped:
        findings = _grouped(findings)
    frame = pd.DataFrame([f.row() + (count, last) for f, count, last in findings]
                         if grouped else [f.row() for f in findings],
                         columns=FINDING_COLUMNS + (["count", "last_seq"] if grouped else []))
    # One spelling of "no name": None (a NaN from a pandas lookup is not a name).
    frame["name"] = frame["name"].astype(object).where(frame["name"].notna(), None)
    return frame.sort_values("first_seq", kind="stable").reset_index(drop=True)


def _grouped(findings: list[Finding]) -> list[tuple[Finding, int, int]]:
    groups: dict[tuple, list[Finding]] = {}
    for f in sorted(findings, key=lambda f: f.first_seq):
        groups.setdefault((f.kind, known_as(f.name, f.pid), f.severity), []).append(f)
    out = []
    for members in groups.values():
        first = members[0]
        evidence = sorted({s for f in members for s in f.evidence})
        last = max(f.first_seq for f in members)
        summary = first.summary
        if len(members) > 1:
            summary += f" ({len(members)} times, seqs {first.first_seq} to {last})"
        out.append((Finding(first.kind, first.severity, first.pid, first.name, summary,
                            first.first_seq, evidence), len(members), last))
    return out


def _timeouts(exits: pd.DataFrame, syntax: str) -> list[Finding]:
    out = []
    for row in exits.itertuples(index=False):
        if is_call_timeout(row.term):
            who = known_as(row.name, row.pid)
            args = row.term[1][2]
            target = render(args[0], syntax) if isinstance(args, list) and args else "?"
            out.append(Finding("call_timeout", "error", row.pid, row.name,
                               f"{who} died waiting for a call to {target} that timed out",
                               int(row.seq), [int(row.seq)]))
    return out


def _reason_text(reason, text: str, syntax: str) -> str:
    """An exception exit as "{:badmatch, ...} in M.f/2 at file:line" (the top
    frame of the stacktrace, not the whole of it); any other reason as is."""
    if (isinstance(reason, tuple) and len(reason) == 2 and isinstance(reason[1], list)
            and reason[1] and isinstance(reason[1][0], tuple) and len(reason[1][0]) == 4):
        module, function, arity, location = reason[1][0]
        arity = len(arity) if isinstance(arity, list) else arity
        return (f"{render(reason[0], syntax, 120)} in "
                f"{format_mfa(module, function, arity, syntax)}{_where(location)}")
    return text


def _where(location) -> str:
    if not isinstance(location, list):
        return ""
    info = {str(k): v for k, v in location if isinstance(k, Atom)} if all(
        isinstance(item, tuple) and len(item) == 2 for item in location) else {}
    file = info.get("file")
    if isinstance(file, list):
        file = "".join(chr(c) for c in file if isinstance(c, int))
    return f" at {file}:{info['line']}" if file and "line" in info else ""


def _unhandled_messages(events: pd.DataFrame, exits: pd.DataFrame, syntax: str) -> list[Finding]:
    out = []
    received = events[events["kind"] == "receive"]
    for row in exits.itertuples(index=False):
        found = unmatched_callback(row.term)
        if found is None:
            continue
        module, function, args, location = found
        message = args[MESSAGE_ARG[(str(function), len(args))]]
        who = known_as(row.name, row.pid)
        callback = format_mfa(module, function, len(args), syntax)
        shown = render(message, syntax, 120)
        state = render(args[-1], syntax, 80)
        mine = received[(received["pid"] == row.pid) & (received["seq"] < row.seq)]
        arrival = [int(seq) for seq, term in zip(mine["seq"][::-1], mine["term"][::-1])
                   if term == message][:1]
        out.append(Finding(
            "unhandled_message", "error", row.pid, row.name,
            f"{who} crashed: no clause of {callback} matched the message {shown} "
            f"(in state {state}){_where(location)}. Add a clause for it, or stop sending it.",
            arrival[0] if arrival else int(row.seq), arrival + [int(row.seq)]))
    return out


def _slow_handlers(facts: Facts) -> list[Finding]:
    # Found by the durations in the headers; only the slow ones are decoded.
    events = facts.store.frame()
    slow = events[(events["kind"] == "state") & (events["_duration_ns"] > SLOW_HANDLER_MS * 1e6)]
    if slow.empty:
        return []
    # A gen_statem's callback comes from its call trace, joined on all its states;
    # any other process's from the slow events alone (decoding every state of a
    # busy worker that was slow once took seconds)
    machines = {int(g) for g, term in zip(slow["_pid"], slow["term"]) if "statem" in (term or {})}
    rows = [(seq, pid, name, us, (term or {}).get("callback")) for seq, pid, name, us, term, g in
            zip(slow["seq"], slow["pid"], slow["name"], slow["_duration_ns"] / 1000, slow["term"],
                slow["_pid"]) if int(g) not in machines]
    if machines:
        states = joins.states(facts.store, machines)
        states = states[states["duration_us"] > SLOW_HANDLER_MS * 1000]
        rows += zip(states["seq"], states["pid"], states["name"], states["duration_us"],
                    states["callback"])
    out = []
    for seq, pid, name, us, callback in sorted(rows, key=lambda row: row[0]):
        name = name if isinstance(name, str) else None
        out.append(Finding("slow_handler", "warning", pid, name, f"{known_as(name, pid)} spent "
                           f"{us / 1000:.0f} ms in {callback}", int(seq), [int(seq)]))
    return out


_MONITOR_TEXT = {
    "long_gc": ("warning", "_duration_ns", 1e-6, "{who} spent {value:.0f} ms in one garbage collection"),
    "long_schedule": ("warning", "_duration_ns", 1e-6,
                      "{who} ran {value:.0f} ms without yielding the scheduler"),
    "large_heap": ("warning", "_aux", 1, "{who} reached an allocated heap of {value:,.0f} words"),
}


def _monitor_findings(facts: Facts) -> list[Finding]:
    frame = facts.store.frame()
    out = []
    for kind, (severity, column, scale, template) in _MONITOR_TEXT.items():
        rows = frame[frame["kind"] == kind]
        for pid, group in rows.groupby("pid", sort=False):
            worst = group.loc[group[column].idxmax()]
            who = worst["name"] if isinstance(worst["name"], str) else pid
            summary = template.format(who=who, value=float(worst[column]) * scale)
            if len(group) > 1:
                summary += f" ({len(group)} times)"
            level = severity
            if kind == "long_schedule" and not hogs_scheduler(group):
                level = "info"      # the system monitor times wall clock: see footprint
                summary += (" (once or twice: on a busy machine the OS can hold the VM's "
                            "scheduler thread that long; a hog repeats)")
            out.append(Finding(kind, level, pid, worst["name"] if isinstance(worst["name"], str)
                               else None, summary, int(group["seq"].iloc[0]),
                               [int(x) for x in group["seq"]]))
    return out


def _deadlocks(facts: Facts) -> list[Finding]:
    """Cycles of gen calls that never got a reply: A waits on B while B waits on A.

    Only each caller's latest call can hold it now: it is answered when a
    reply carrying its tag is in the recording (``replies.answered``: every
    reply's tag hashed at once in numpy, the few matches compared whole). So
    the pass reads two columns and decodes nothing, whatever the traffic."""
    store = facts.store
    sent = joins.outgoing(store)
    raw = store.raw()
    heads = raw.heads(sent["seq"].to_numpy(dtype=np.int64))
    is_call = starts_with(heads, GEN_CALL_HEADS) & (sent["_receiver"].to_numpy() > 0)
    latest = sent[is_call].drop_duplicates("pid", keep="last")
    if latest.empty:
        return []
    tags = {int(seq): call_tag_bytes(raw.payload(int(seq))) for seq in latest["seq"]}
    replied = answered(facts, [t for t in tags.values() if t])
    waiting: dict[str, tuple[int, str, str | None]] = {}
    for seq, caller, caller_name, receiver in zip(latest["seq"].tolist(), latest["pid"],
                                                  latest["name"], latest["_receiver"].tolist()):
        tag = tags[seq]
        if tag is not None and replied.get(tag, -1) <= seq:
            waiting[caller] = (seq, store.id_text(int(receiver)),
                               caller_name if isinstance(caller_name, str) else None)
    out, reported = [], set()
    for start in waiting:
        path, node = [], start
        while node in waiting and node not in path:
            path.append(node)
            node = waiting[node][1]
        if node in path:
            cycle = path[path.index(node):]
            key = frozenset(cycle)
            if key in reported:
                continue
            reported.add(key)
            names = [waiting[p][2] or p for p in cycle]
            seqs = sorted(waiting[p][0] for p in cycle)
            out.append(Finding("deadlock", "error", cycle[0], waiting[cycle[0]][2],
                               "deadlock: " + " -> ".join(names + [names[0]])
                               + " each wait on a call the next never answers",
                               seqs[0], seqs))
    return out


def _mailbox_growth(facts: Facts) -> list[Finding]:
    """Mailboxes that piled up, by the node's own sampled queue lengths only
    (queued-before-the-trace messages included): a count estimated between
    samples drifts wherever messages leave a queue unseen, so it never
    raises a finding. Read off the raw columns: no time travel is built."""
    store = facts.store
    raw, names = store.raw(), store.names()
    rows = np.flatnonzero(raw.kind == _MAILBOX)
    out: list[Finding] = []
    if not len(rows) or int(raw.aux[rows].max()) < MAILBOX_GROWTH:
        return out
    for gid in np.unique(raw.pid[rows][raw.aux[rows] >= MAILBOX_GROWTH]).tolist():
        mine = rows[raw.pid[rows] == gid]
        level = raw.aux[mine]
        peak = int(level.max())
        at = int(mine[int(level.argmax())])
        # the last name it held by then, kept after it let go of it
        name = next((n for s, n in reversed(names.spans(gid)) if n and s <= at), None)
        pid = store.id_text(gid) or "?"
        ending = int(level[-1])
        trend = (f", still {ending} at its last sample" if ending >= MAILBOX_GROWTH // 2
                 else "")
        out.append(Finding("mailbox_growth", "warning", pid, name,
                           f"the mailbox of {known_as(name, pid)} grew to {peak} messages "
                           f"(the node's own count){trend}", at, [at]))
    return out
