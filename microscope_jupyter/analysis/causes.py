"""Causes: findings joined into chains that say why, each with its evidence.

    for cause in find_causes(recorded): cause.kind, cause.summary, cause.evidence

Each finder reads the recording's tables and returns ``Cause`` objects:

- ``stale_pid``: sends to a dead pid whose name another pid now holds; who
  keeps the stale pid, and where in its state;
- ``backlog``: a mailbox that grew (the node's own counts), arrival against
  handling rate, and what ate the handling time (callbacks grouped by
  message shape, garbage collections, long schedules, the tool's own cost);
- ``crash_restart``: a crash, the restart, and what the restart lost;
- ``deadlock``: one per cycle of calls, with how often it recurred;
- ``state_growth``: a GenServer whose state keeps growing, and which part.

Everything is computed from the recording (deterministic: the same
recording gives the same causes), except that a name whose holder died
before the trace began is looked up on the live node when one is attached.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pandas as pd

from ..beam.terms import Atom, Pid
from ..errors import MicroscopeError
from ..render.elixir import render
from ..store import joins
from ..render.names import format_name, known_as
from ..store.otp import call_target, is_call_timeout, message_kind, state_recorded
from .backlog import backlogs
from .cause import Cause
from .growth import state_entries, state_growth
from .unread import crash_messages, died_unread

if TYPE_CHECKING:  # pragma: no cover
    from .recorded import SessionBase

__all__ = ["Cause", "find_causes", "state_entries"]


def find_causes(recorded: "SessionBase") -> list[Cause]:
    causes = _stale_pids(recorded) + backlogs(recorded) + _crashes(recorded)
    causes += _deadlocks(recorded) + state_growth(recorded)
    return causes


# -- stale pids ---------------------------------------------------------------

def _stale_pids(recorded: "SessionBase") -> list[Cause]:
    if not joins.may_have_lost(recorded.store):
        return []
    messages = joins.lost_candidates(recorded.store)
    lost = messages[(messages["status"] == "lost") & messages["send_seq"].notna()]
    if lost.empty:
        return []
    events = recorded.events
    out = []
    for receiver, group in lost.groupby("receiver", sort=False):
        name = _name_of(events, receiver) or next(
            (n for n in group["receiver_name"] if isinstance(n, str)), None)
        exits = events[(events["kind"] == "exit") & (events["pid"] == receiver)]
        # Why it died is the crash's own cause (crash_restart): here, only when.
        died = (f"died at seq {int(exits['seq'].iloc[0])}" if len(exits)
                else "had died before the recording began")
        taken = events.iloc[0:0]
        if name is None:
            holder = "the recording never saw its name"
        else:
            taken = events[(events["kind"] == "register") & (events["peer"] == name)
                           & (events["pid"] != receiver)]
            if len(taken):
                holder = (f"{taken['pid'].iloc[-1]} has held the name since seq "
                          f"{int(taken['seq'].iloc[-1])}")
            else:
                live = recorded.live_holder(name)
                holder = (f"on the live node {name} is now {live} (asked after the recording)"
                          if live else f"no process took the name {name} while recording")
        senders = [s for s in dict.fromkeys(group["sender_name"].fillna(group["sender"]))
                   if isinstance(s, str)]
        paths = {s: path for s in senders if (path := _path_to_pid(recorded, s, receiver))}
        where = [f"{s} keeps it in its state at {path}" for s, path in paths.items()]
        guess = _live_namesake(recorded, paths) if name is None and paths else None
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
        evidence += [int(s) for s in taken["seq"].tail(1)]
        out.append(Cause("stale_pid", 0.9 if where else 0.7, summary, sorted(set(evidence)),
                         [p for p in [name, receiver] if p] + senders))
    return out


def _live_namesake(recorded: "SessionBase", paths: dict[str, str]) -> tuple | None:
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
            holder = recorded.live_holder(candidate)
            if holder:
                return candidate, holder, path
    return None


def _why_died(recorded: "SessionBase", pid: str) -> str:
    """A crash's reason in a few words: the unmatched message if that was it."""
    findings = recorded.findings(grouped=False)
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


def _path_to_pid(recorded: "SessionBase", proc: str, pid: str) -> str | None:
    """Where in ``proc``'s last recorded state the pid ``pid`` is (".worker_b")."""
    state = _last_state(recorded, proc)
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

def _crashes(recorded: "SessionBase") -> list[Cause]:
    findings = recorded.findings(grouped=False)
    crashes = findings[findings["kind"] == "crash"]
    restarts = findings[findings["kind"] == "restart"]
    fatal = crash_messages(recorded)
    events = recorded.events if fatal else None
    # Callers that died of a call to a crashed process are that crash's
    # consequences, told in its cause rather than as causes of their own.
    callers = _callers_by_crash(recorded, crashes)
    consequences = {seq for found in callers.values() for _, seq, _ in found}
    died = died_unread(recorded) if len(crashes) else set()
    unread = None
    if died:
        frame = recorded.store.frame()
        unread = frame[frame["seq"].isin(died)][["seq", "pid"]]
    out = []
    for crash in crashes.itertuples(index=False):
        if crash.first_seq in consequences:
            continue
        summary = f"{known_as(crash.name, crash.pid)} crashed: {_why_died(recorded, crash.pid)}."
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
            before = _last_state(recorded, crash.pid)
            after = _first_state(recorded, restart["pid"])
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


def _callers_by_crash(recorded: "SessionBase", crashes: pd.DataFrame) -> dict:
    """pid of each crash -> (caller, exit seq, timed out) for each caller that died
    of a gen call to it. A call by name belongs to one crash of that name: a
    caller that died of the call timeout to the next crash (it waited on the
    stuck server), any other to the last one before it (the crash ended its call)."""
    events = recorded.store.frame()
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
            before = [pid for s, pid in seqs if s < seq]
            owner = (after[0] if after else before[-1]) if timed_out else \
                (before[-1] if before else after[0])
            out[owner].append((who, int(seq), timed_out))
    return out


def _full_states(recorded: "SessionBase", proc: str, column: str) -> list:
    """``proc``'s states in ``column`` (before/after) that were recorded in full;
    none for a process the recording has no transitions of."""
    try:
        states = recorded.states(proc)
    except MicroscopeError:   # unknown here, or silent
        return []
    return [s for s in states[column] if state_recorded(s)]


def _last_state(recorded: "SessionBase", pid: str) -> Any:
    values = _full_states(recorded, pid, "after")
    return values[-1] if values else None


def _first_state(recorded: "SessionBase", pid: str) -> Any:
    values = _full_states(recorded, pid, "before")
    return values[0] if values else None


def _deadlocks(recorded: "SessionBase") -> list[Cause]:
    findings = recorded.findings(grouped=False)
    rows = findings[findings["kind"] == "deadlock"]
    out = []
    messages = recorded.messages() if len(rows) else None
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
        exits = recorded.store.frame()
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
