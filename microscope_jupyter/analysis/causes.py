"""Causes: findings joined into chains that say why, each with its evidence.

    for cause in find_causes(facts): cause.kind, cause.summary, cause.evidence

Each finder reads the recording's tables and returns ``Cause`` objects:

- ``stale_pid``: sends to a dead pid whose name another pid now holds; who
  keeps the stale pid, and where in its state;
- ``backlog``: a mailbox that grew (the node's own counts), arrival against
  handling rate, and what ate the handling time (callbacks grouped by
  message shape, garbage collections, long schedules, the tool's own cost);
- ``crash_restart``: a crash, the restart, and what the restart lost;
- ``deadlock``: one per cycle of calls, with how often it recurred;
- ``state_growth``: a GenServer whose state keeps growing, and which part.

Each cause's evidence also holds what the node logged at error level about
its processes (``logs``: a crash report, a supervisor's report, the app's
own ``Logger.error``).

Everything is computed from the recording (deterministic: the same
recording gives the same causes), except that a name whose holder died
before the trace began is looked up on the live node when one is attached.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from ..beam.terms import Atom, Pid
from ..errors import MicroscopeError
from ..render.elixir import render
from ..store import joins
from ..render.names import format_name, known_as
from ..store.otp import call_target, is_call_timeout, message_kind, state_recorded
from .backlog import backlogs
from .detector_kit import Cause
from .footprint import atom_makers, big_messages, binary_hoards, heap_spikes, scheduler_hogs
from .growth import state_growth
from .ets_races import ets_races
from .leaks import monitor_leaks, process_leaks
from .selective_receive import mailbox_scans, unmatched_messages
from .statem import postponed_calls, statem_timeouts
from .timers import timer_leaks
from .unanswered import unanswered_calls
from .unread import crash_messages, died_unread
from .supervision import gave_up, wrong_strategy
from .starts import init_crash_loops, name_races, slow_inits
from .links import exit_propagation
from .timeouts import cascading_timeouts, late_replies
from .ordering import overtaken_messages
from .ets_tables import lost_tables
from .facts import Facts
from .findings import findings_table
from .logs import with_log_evidence


__all__ = ["Cause", "find_causes"]


def find_causes(facts: Facts) -> list[Cause]:
    causes = _stale_pids(facts) + backlogs(facts) + _crashes(facts)
    causes += _deadlocks(facts) + state_growth(facts)
    causes += (big_messages(facts) + scheduler_hogs(facts) + heap_spikes(facts)
               + binary_hoards(facts))
    causes += atom_makers(facts)
    causes += statem_timeouts(facts) + postponed_calls(facts) + unanswered_calls(facts)
    causes += process_leaks(facts) + monitor_leaks(facts) + timer_leaks(facts)
    causes += unmatched_messages(facts) + mailbox_scans(facts) + ets_races(facts)
    causes += gave_up(facts) + wrong_strategy(facts) + init_crash_loops(facts)
    causes += slow_inits(facts) + exit_propagation(facts) + cascading_timeouts(facts)
    causes += late_replies(facts) + overtaken_messages(facts) + lost_tables(facts)
    causes += name_races(facts)
    # what the node logged about a cause's processes (errors, crash and supervisor reports)
    return with_log_evidence(facts, _folded(causes))


# A queue that grew is a symptom; where a mechanism says why that queue grew
# (a scanning receive, messages no clause takes, calls postponed), the backlog
# is folded into it: its advice ("move the slow work out of the callback")
# would be wrong there.
_QUEUE_MECHANISMS = {"mailbox_scan", "unmatched_messages", "postponed_calls"}


def _folded(causes: list[Cause]) -> list[Cause]:
    out = []
    for cause in causes:
        home = next((c for c in causes if c.kind in _QUEUE_MECHANISMS
                     and set(c.processes) & set(cause.processes)), None) \
            if cause.kind == "backlog" else None
        if home is None:
            out.append(cause)
        else:
            home.evidence = sorted(set(home.evidence) | set(cause.evidence))
    return out


# -- stale pids ---------------------------------------------------------------

def _stale_pids(facts: Facts) -> list[Cause]:
    if not joins.may_have_lost(facts.store):
        return []
    messages = joins.lost_candidates(facts.store)
    lost = messages[(messages["status"] == "lost") & messages["send_seq"].notna()]
    if lost.empty:
        return []
    events = facts.events
    taken_by = _successors(facts)
    out = []
    for receiver, group in lost.groupby("receiver", sort=False):
        name = _name_of(events, receiver) or next(
            (n for n in group["receiver_name"] if isinstance(n, str)), None)
        exits = events[(events["kind"] == "exit") & (events["pid"] == receiver)]
        # Why it died is the crash's own cause (crash_restart): here, only when.
        died = (f"died at seq {int(exits['seq'].iloc[0])}" if len(exits)
                else "had died before the recording began")
        taken = _last_successor(taken_by, receiver)
        if name is None:
            holder = "the recording never saw its name"
        else:
            if taken is not None:
                holder = f"{taken[1]} has held the name since seq {taken[0]}"
            else:
                live = facts.live_holder(name)
                holder = (f"on the live node {name} is now {live} (asked after the recording)"
                          if live else f"no process took the name {name} while recording")
        senders = [s for s in dict.fromkeys(group["sender_name"].fillna(group["sender"]))
                   if isinstance(s, str)]
        # where the sending pid kept it: that pid's states, not a later holder of its name
        by_pid = dict(zip(group["sender"], group["sender_name"].fillna(group["sender"])))
        paths = {}
        for pid, who in by_pid.items():
            if isinstance(pid, str) and who not in paths:
                if (path := _path_to_pid(facts, pid, receiver)):
                    paths[who] = path
        where = [f"{s} keeps it in its state at {path}" for s, path in paths.items()]
        if name is None and not paths and len(group) < 2:
            continue     # one message to a nameless pid nobody keeps: a race with its end, no stale pid
        if not paths and group.groupby("sender").size().max() < 2 and (
                taken is None or not (group["send_seq"] > taken[0]).any()):
            continue     # one message a sender, before the name moved on: each looked it up in
            #              the moment it died (a client riding a recycle), no stale pid
        guess = _live_namesake(facts, paths) if name is None and paths else None
        if guess:
            holder = (f"the recording never saw its name, but on the live node {guess[0]} "
                      f"(the name its field {guess[2]} suggests) is now {guess[1]}")
        target = f"the {name} that {died}" if name else f"a process that {died}"
        named = name or (guess[0] if guess else None)
        advice = (f"Send to the name {named}, or monitor it and look it up again on :DOWN."
                  if named else "Look the process up by name when sending, or monitor it "
                  "and look it up again on :DOWN.")
        summary = (f"{', '.join(senders)} sent {len(group)} message(s) to {receiver}, {target}, "
                   f"so they were lost; {holder}. "
                   + (". ".join(where) + ", taken once and never looked up again. " if where
                      else f"{senders[0] if senders else 'The sender'} holds a stale pid. ")
                   + advice)
        evidence = [int(s) for s in group["send_seq"].head(20)] + [int(s) for s in exits["seq"]]
        evidence += [taken[0]] if taken is not None and name is not None else []
        out.append(Cause("stale_pid", 0.9 if where else 0.7, summary, sorted(set(evidence)),
                         [p for p in [name, receiver] if p] + senders))
    return out


def _successors(facts: Facts) -> dict[str, tuple[int, str]]:
    """pid -> (seq, pid) that took its name next on its node (the name index's word)."""
    store, out = facts.store, {}
    for seq, new, _, old in store.names().successions():
        out.setdefault(store.id_text(old), (seq, store.id_text(new)))
    return out


def _last_successor(taken_by: dict[str, tuple[int, str]], pid: str) -> tuple[int, str] | None:
    """Who holds ``pid``'s name at the end, through every restart, and since when."""
    last, seen = None, {pid}
    while (nxt := taken_by.get(pid)) is not None and nxt[1] not in seen:
        last, pid = nxt, nxt[1]
        seen.add(pid)
    return last


def _live_namesake(facts: Facts, paths: dict[str, str]) -> tuple | None:
    """A registered name the field holding a stale pid suggests (``.sink`` in
    ``Relay.Feeder`` suggests ``Relay.Sink``), and its live holder: what the
    stale pid most likely was, when it died before the recording."""
    for sender, path in paths.items():
        field = path.rsplit(".", 1)[-1].strip("[]:")
        if not field.isidentifier():
            continue
        module = "".join(part.capitalize() for part in field.split("_"))
        prefixes = [sender.rsplit(".", k)[0] for k in range(1, sender.count(".") + 1)]
        for candidate in [f"{p}.{module}" for p in prefixes] + [module, field]:
            holder = facts.live_holder(candidate)
            if holder:
                return candidate, holder, path
    return None


def _why_died(facts: Facts, pid: str) -> str:
    """A crash's reason in a few words: the unmatched message if that was it."""
    findings = findings_table(facts, grouped=False)
    mine = findings[findings["pid"] == pid]
    for kind in ("unhandled_message", "call_timeout", "crash"):
        rows = mine[mine["kind"] == kind]
        if len(rows):
            text = str(rows["summary"].iloc[0]).split(" crashed: ", 1)[-1]
            who = rows["name"].iloc[0] or pid
            text = text[len(who) + 1:] if text.startswith(f"{who} ") else text
            text = text.split(". Add a clause", 1)[0]
            return text if len(text) <= 160 else text[:157] + "..."
    return "exited"


def _name_of(events: pd.DataFrame, pid: str) -> str | None:
    names = events.loc[(events["pid"] == pid) & events["name"].notna(), "name"]
    return str(names.iloc[-1]) if len(names) else None


def _path_to_pid(facts: Facts, proc: str, pid: str) -> str | None:
    """Where in ``proc``'s last recorded state the pid ``pid`` is (".worker_b")."""
    state = _last_state(facts, proc)
    return _find_pid(state, pid, "") if state is not None else None


def _find_pid(term: Any, pid: str, path: str) -> str | None:
    if isinstance(term, Pid):
        return (path or "the whole state") if str(term) == pid else None
    if isinstance(term, dict):
        items = [(f".{k}" if isinstance(k, Atom) else f"[{render(k, 'elixir', 40)}]", v)
                 for k, v in term.items()]
    elif isinstance(term, (tuple, list)):
        items = [(f"[{i}]", v) for i, v in enumerate(term)]
    else:
        return None
    for step, value in items:
        found = _find_pid(value, pid, path + step)
        if found:
            return found
    return None


# -- crashes, deadlocks, growth -----------------------------------------------

def _crashes(facts: Facts) -> list[Cause]:
    findings = findings_table(facts, grouped=False)
    crashes = findings[findings["kind"] == "crash"]
    restarts = findings[findings["kind"] == "restart"]
    fatal = crash_messages(facts)
    events = facts.events if fatal else None
    # Callers that died of a call to a crashed process are that crash's
    # consequences, told in its cause rather than as causes of their own.
    callers = _callers_by_crash(facts, crashes)
    consequences = {seq for found in callers.values() for _, seq, _ in found}
    died = died_unread(facts) if len(crashes) else set()
    unread = None
    if died:
        frame = facts.store.frame()
        unread = frame[frame["seq"].isin(died)][["seq", "pid"]]
    out = []
    for crash in crashes.itertuples(index=False):
        if crash.first_seq in consequences:
            continue
        summary = f"{known_as(crash.name, crash.pid)} crashed: {_why_died(facts, crash.pid)}."
        evidence = list(crash.evidence)
        if crash.pid in fatal and not findings[(findings["pid"] == crash.pid) & (
                findings["kind"] == "unhandled_message")].shape[0]:
            seq = fatal[crash.pid]
            summary += f" It was handling {_message(events['term'].iloc[seq])} (seq {seq})."
            evidence.append(seq)
        again = restarts[(restarts["name"] == crash.name) & (restarts["first_seq"] > crash.first_seq)]
        if crash.name and len(again):
            restart = again.iloc[0]
            summary += f" Its supervisor restarted it as {restart['pid']} (seq {restart['first_seq']})"
            before = _last_state(facts, crash.pid)
            after = _first_state(facts, restart["pid"])
            if before is not None and after is not None and before != after:
                summary += (f"; the restart lost its state: {render(before, 'elixir', 80)} "
                            f"became {render(after, 'elixir', 80)}")
            summary += "."
            evidence += list(restart["evidence"])
        failed = callers[crash.pid]
        if failed:
            timed_out = sum(timeout for _, _, timeout in failed)
            summary += f" {len(failed)} caller(s) died of their calls to it"
            summary += (f", {timed_out} of them by the call timeout while it was stuck: "
                        if timed_out else ": ")
            summary += ", ".join(sorted({caller for caller, _, _ in failed})[:5]) + "."
            evidence += [seq for _, seq, _ in failed]
        # only what was in its mailbox when it died, counted: never said of none
        queued = unread[unread["pid"] == crash.pid]["seq"].tolist() if unread is not None else []
        if queued:
            summary += f" {len(queued)} message(s) still in its mailbox died with it."
            evidence += queued[:10]
        out.append(Cause("crash_restart", 0.6, summary, sorted(set(evidence)),
                         [known_as(crash.name, crash.pid)]))
    return out


def _message(term: Any) -> str:
    """A received message as a GenServer sees it: "the cast {:settle, 400}"."""
    kind = message_kind(term)
    if kind in ("call", "cast") and isinstance(term, tuple) and term:
        return f"the {kind} {render(term[-1], 'elixir', 80)}"
    return f"the message {render(term, 'elixir', 80)}"


def _callers_by_crash(facts: Facts, crashes: pd.DataFrame) -> dict:
    """pid of each crash -> (caller, exit seq, timed out) for each caller that died
    of a gen call to it. A call by name belongs to one crash of that name: a
    caller that died of the call timeout to the next crash (it waited on the
    stuck server), any other to the last one before it (the crash ended its call)."""
    events = facts.store.frame()
    exits = events[events["kind"] == "exit"]
    by_name: dict[str, list[tuple[int, str]]] = {}
    for crash in crashes.itertuples(index=False):
        if crash.name:
            by_name.setdefault(crash.name, []).append((int(crash.first_seq), crash.pid))
    out: dict[str, list] = {crash.pid: [] for crash in crashes.itertuples(index=False)}
    for seq, caller, caller_name, reason in zip(exits["seq"], exits["pid"], exits["name"],
                                                exits["term"]):
        target = call_target(reason)
        who = caller_name if isinstance(caller_name, str) else caller
        timed_out = is_call_timeout(reason)
        if isinstance(target, Pid) and str(target) in out:
            out[str(target)].append((who, int(seq), timed_out))
        elif isinstance(target, Atom) and format_name(target) in by_name:
            seqs = sorted(by_name[format_name(target)])
            after = [pid for s, pid in seqs if s > seq]
            before = [pid for s, pid in seqs if s <= seq]   # a server that called itself
            owner = (after[0] if after else before[-1]) if timed_out else \
                (before[-1] if before else after[0])
            if owner != caller:      # its own crash (calling_self) is no caller's death
                out[owner].append((who, int(seq), timed_out))
    return out


def _full_states(facts: Facts, proc: str, column: str) -> list:
    """``proc``'s states in ``column`` (before/after) that were recorded in full;
    none for a process the recording has no transitions of."""
    try:
        states = facts.states(proc)
    except MicroscopeError:   # unknown here, or silent
        return []
    return [s for s in states[column] if state_recorded(s)]


def _last_state(facts: Facts, pid: str) -> Any:
    values = _full_states(facts, pid, "after")
    return values[-1] if values else None


def _first_state(facts: Facts, pid: str) -> Any:
    values = _full_states(facts, pid, "before")
    return values[0] if values else None


def _deadlocks(facts: Facts) -> list[Cause]:
    findings = findings_table(facts, grouped=False)
    rows = findings[findings["kind"] == "deadlock"]
    out = []
    messages = facts.messages() if len(rows) else None
    for summary, group in rows.groupby("summary", sort=False):
        times = f" It happened {len(group)} times." if len(group) > 1 else ""
        evidence = sorted({s for ev in group["evidence"] for s in ev})
        first = set(group["evidence"].iloc[0])
        calls = messages[messages["send_seq"].isin(first)].sort_values("send_seq")
        requests = [f"{n or p} called {_request(t)}" for n, p, t in
                    zip(calls["sender_name"], calls["sender"], calls["term"])]
        if requests:
            times = f" The calls: {'; '.join(requests)}." + times
        timeouts = findings[(findings["kind"] == "call_timeout")
                            & (findings["first_seq"] > min(evidence))]
        timed = set(timeouts["name"].fillna(timeouts["pid"]))
        # the cycle's own servers, said apart from the callers stuck on them
        cycle = list(dict.fromkeys(n if isinstance(n, str) else p
                                   for n, p in zip(calls["sender_name"], calls["sender"])))
        outside = sorted(timed - set(cycle))
        if outside:
            times += (f" {len(outside)} caller(s) then died of the call timeout: "
                      f"{', '.join(outside)}.")
        exits = facts.store.frame()
        exits = exits[(exits["kind"] == "exit") & (exits["seq"] > min(evidence))]
        gone = set(exits["name"].fillna(exits["pid"]))
        own_timed = [m for m in cycle if m in timed]
        own_other = [m for m in cycle if m in gone and m not in timed]
        if own_timed:
            times += (f" The cycle's own {' and '.join(own_timed)} died of the call timeout"
                      f"{' too' if outside else ''}.")
        if own_other:
            times += f" The cycle's own {' and '.join(own_other)} died too."
        out.append(Cause("deadlock", 0.9, summary[0].upper() + summary[1:] + "." + times
                         + " Break the cycle: a call inside a handle_call to a process that "
                         "calls back never returns; make one of them a cast or reply later.",
                         evidence, [p for p in group["name"].fillna(group["pid"])]))
    return out


def _request(term: Any) -> str:
    """The request of a gen call message, as Elixir."""
    if isinstance(term, tuple) and len(term) == 3:
        return render(term[2], "elixir", 60)
    return render(term, "elixir", 60)
