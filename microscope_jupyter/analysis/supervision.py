"""Supervision gone wrong: a supervisor that used up its restart intensity and
shut down (with the parents that gave up after it), and a supervisor that
restarted a child alone while a sibling kept the dead child's pid.

    gave_up(facts)          # [Cause("restart_intensity", ...)]
    wrong_strategy(facts)   # [Cause("wrong_strategy", ...)]

Read from the process lives (``lifecycle``): a supervisor is one when the
trace began, or a process that spawns, links and starts its children. OTP's
supervisor restarts a failed child at once; when its children fail more
often than its intensity allows within its period (MaxR in MaxT) it
terminates the children it still has and exits with reason ``shutdown``. So a
supervisor whose ``shutdown`` follows a child's failure with no restart in
between gave up; one its parent stopped exits after children that stopped in
order, with no failure before. A supervisor's flags are not in the trace: the
restarts it made before giving up are the best estimate of its intensity.

The supervisor also says so itself: its report (``reached_max_restart_intensity``,
logged by the node and recorded as a ``log`` event) names the child whose
failure ended it. A giving up the lives do not show (the supervisor was not
traced, or its exit fell outside the recording) is told from its reports.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..beam.terms import Atom, Pid
from ..render.elixir import render
from ..render.names import format_name
from ..store.logs import is_restart_intensity_report
from ..store.schema import KIND_CODES
from .detector_kit import Cause
from .facts import Facts
from .lifecycle import Lives, abnormal_exits, lifecycle, reason_text, state_of
from .logs import supervisor_reports

__all__ = ["gave_up", "wrong_strategy"]

_PERIOD_NS = 5 * 10**9     # OTP's default period: failures further apart are another burst
_AT_ONCE_NS = 50 * 10**6   # intensity 0 gives up at the first failure, right away
_RESTARTED_WITH_NS = 10**9  # a sibling that ends this close to the restart went with it
_SHUTDOWN = Atom("shutdown")
_NOPROC = Atom("noproc")
_SEND = KIND_CODES["send"]


@dataclass
class _Quit:
    exit_seq: int
    burst: list[tuple[int, str]]    # (exit seq, child) of the failures that used it up
    restarts: int


# -- restart intensity --------------------------------------------------------

def gave_up(facts: Facts) -> list[Cause]:
    lives = lifecycle(facts)
    seen = _seen_giving_up(facts, lives)
    told = {p for cause in seen for p in cause.processes}
    return seen + _reported_giving_up(facts, lives, told)


def _seen_giving_up(facts: Facts, lives: Lives) -> list[Cause]:
    if not lives.supervisors or not lives.exit_seq:
        return []
    terms = facts.store.frame()["term"]
    raw = facts.store.raw()
    crashed = abnormal_exits(facts)
    failed: dict[str, str] = {}     # pid -> "crash", "start" (died in its init) or "gave up"
    quit: dict[str, _Quit] = {}
    # only supervisors and their children matter: what a supervisor sees fail
    watched = [(seq, pid) for pid, seq in lives.exit_seq.items()
               if pid in lives.supervisors or lives.parent.get(pid) in lives.supervisors]
    for seq, pid in sorted(watched):
        if lives.start_failed(pid):
            failed[pid] = "start"
            continue
        if pid in lives.supervisors and pid not in crashed and _is_shutdown(terms.iloc[seq]):
            found = _burst(lives, raw, failed, pid, seq)
            if found is not None:
                quit[pid] = found
                failed[pid] = "gave up"
                continue
        if pid in crashed:
            failed[pid] = "crash"
    if not quit:
        return []
    above = {sup: parent for sup in quit
             if (parent := lives.parent.get(sup)) in quit
             and any(kid == sup for _, kid in quit[parent].burst)}
    below = set(above.values())
    out = []
    for bottom in (s for s in quit if s not in below):
        chain = [bottom]
        while chain[-1] in above and above[chain[-1]] not in chain:
            chain.append(above[chain[-1]])
        out.append(_intensity_cause(facts, lives, terms, raw, quit, failed, chain))
    return out


def _is_shutdown(reason: Any) -> bool:
    return reason == _SHUTDOWN


def _burst(lives: Lives, raw, failed: dict, sup: str, exit_seq: int) -> _Quit | None:
    """The failures of ``sup``'s children it gave up after, or None when its
    exit followed no failure, or it restarted after the last one."""
    kids = lives.children.get(sup, [])
    fails = sorted((lives.exit_seq[k], k) for k in kids
                   if k in failed and lives.exit_seq[k] < exit_seq)
    if not fails:
        return None
    last = fails[-1][0]
    ts = raw.ts_ns
    if int(ts[exit_seq]) - int(ts[last]) > _PERIOD_NS:
        return None
    if any(last < lives.spawn_seq.get(k, -1) < exit_seq for k in kids):
        return None     # it restarted after the last failure: not what it exited of
    burst = [fails[-1]]
    for seq, kid in reversed(fails[:-1]):
        if int(ts[burst[0][0]]) - int(ts[seq]) > _PERIOD_NS:
            break
        burst.insert(0, (seq, kid))
    restarts = sum(1 for k in kids if burst[0][0] < lives.spawn_seq.get(k, -1) < last)
    if not restarts and int(ts[exit_seq]) - int(ts[last]) > _AT_ONCE_NS:
        return None     # no restart at all, and no hurry: more likely stopped by its parent
    return _Quit(exit_seq, burst, restarts)


def _intensity_cause(facts: Facts, lives: Lives, terms, raw, quit: dict, failed: dict,
                     chain: list[str]) -> Cause:
    syntax = facts.syntax
    bottom = chain[0]
    q = quit[bottom]
    name = lives.who(bottom, q.exit_seq)
    first, last = q.burst[0][0], q.burst[-1][0]
    span = (int(raw.ts_ns[last]) - int(raw.ts_ns[first])) / 1e6
    text = (f"{name} reached its restart intensity and gave up: its children failed "
            f"{len(q.burst)} times in {_ms(span)} ({_failures(lives, terms, failed, q.burst, syntax)})"
            f", it restarted them {q.restarts} time(s), then shut itself down (reason shutdown, "
            f"seq {q.exit_seq}) with the children it still had. A supervisor gives up when "
            "more restarts than its intensity happen within its period (MaxR in MaxT): "
            f"{q.restarts} restart(s) before the failure that ended it, so its intensity is "
            f"likely {q.restarts} (the supervisor's flags are not in the trace).")
    evidence = [s for s, _ in q.burst] + [q.exit_seq]
    for lower, upper in zip(chain, chain[1:]):
        up = quit[upper]
        again = [(s, k) for s, k in up.burst if s > quit[lower].exit_seq]
        text += f" Its parent {lives.who(upper, up.exit_seq)} restarted it {up.restarts} time(s)"
        if again:
            seq, kid = again[-1]
            how = ("failed to start" if failed.get(kid) == "start" else "failed again")
            text += (f"; it {how} ({reason_text(terms.iloc[seq], syntax, 120)}, seq {seq})")
        text += f", and {lives.who(upper, up.exit_seq)} gave up too (seq {up.exit_seq})."
        evidence += [s for s, _ in again] + [up.exit_seq]
    gone = _gone(lives, chain[-1], raw)
    if gone:
        text += (f" Gone for good, nothing restarted them: {', '.join(gone[:8])}"
                 f"{' and more' if len(gone) > 8 else ''}.")
    dependency = _dependency(facts, lives, raw, terms, [k for _, k in q.burst], first)
    if dependency:
        text += " " + dependency
    text += (" Let the children survive a failing dependency (return an error, retry with a "
             "backoff, connect after init) rather than crash at once on every restart, or "
             "give the supervisor a higher intensity or a longer period.")
    return Cause("restart_intensity", 0.9, text, sorted(set(evidence)),
                 [lives.who(s, quit[s].exit_seq) for s in chain])


def _reported_giving_up(facts: Facts, lives: Lives, told: set[str]) -> list[Cause]:
    """A supervisor's own report that it reached its restart intensity, for
    each the lives did not show giving up: with the child failures it reported
    within its period before."""
    reports = supervisor_reports(facts)
    if not len(reports):
        return []
    out = []
    for report in reports.itertuples(index=False):
        entry = report.entry
        if not is_restart_intensity_report(entry) or {report.who, report.pid} & told:
            continue
        told |= {report.who, report.pid}
        mine = reports[(reports["pid"] == report.pid) & (reports["seq"] < report.seq)
                       & (reports["ts_ns"] >= report.ts_ns - _PERIOD_NS)]
        failures = [r for r in mine.itertuples(index=False)
                    if r.entry.get("context") in ("child_terminated", "start_error")]
        who = report.who if report.who != report.pid else _reported_name(entry, report.pid)
        child = _reported_child(entry, facts.syntax)
        text = (f"{who} reached its restart intensity and gave up, as its own supervisor "
                f"report says (reached_max_restart_intensity, seq {report.seq}): ")
        if failures:
            text += (f"it reported {len(failures)} child failure(s) within its period before "
                     f"({_reported_failures(failures, facts.syntax)}), then {child} failed "
                     "again, ")
        else:
            text += f"{child} failed, "
        text += ("more restarts than its intensity allows within its period (MaxR in MaxT), "
                 "so it shut itself down with the children it still had.")
        evidence = [r.seq for r in failures] + [report.seq]
        exit_seq = lives.exit_seq.get(report.pid)
        if exit_seq is not None and exit_seq > report.seq:
            evidence.append(exit_seq)
        gone = _gone(lives, report.pid, facts.store.raw()) if report.pid in lives.exit_seq else []
        if gone:
            text += (f" Gone for good, nothing restarted them: {', '.join(gone[:8])}"
                     f"{' and more' if len(gone) > 8 else ''}.")
        text += (" Let the children survive a failing dependency (return an error, retry with "
                 "a backoff, connect after init) rather than crash at once on every restart, "
                 "or give the supervisor a higher intensity or a longer period.")
        out.append(Cause("restart_intensity", 0.9, text, sorted(set(evidence)), [who]))
    return out


def _reported_name(entry: dict, pid: str) -> str:
    """The supervisor as its report names it ({local, Name}, or {Pid, Module})."""
    sup = entry.get("supervisor")
    if isinstance(sup, tuple) and len(sup) == 2 and isinstance(sup[1], Atom):
        if isinstance(sup[0], Pid):
            return f"{pid} ({format_name(sup[1])})"
        return format_name(sup[1]) or pid
    return pid


def _reported_child(entry: dict, syntax: str) -> str:
    child_id = entry.get("child_id")
    return (f"its child {render(child_id, syntax, 60)}" if child_id is not None
            else "a child")


def _reported_failures(failures: list, syntax: str) -> str:
    parts = []
    for r in failures[:5]:
        child_id, reason = r.entry.get("child_id"), r.entry.get("reason")
        part = render(child_id, syntax, 40) if child_id is not None else "a child"
        part += f" ({reason_text(reason, syntax, 80)})" if reason is not None else ""
        parts.append(f"{part}, seq {r.seq}")
    return "; ".join(parts) + ("; ..." if len(failures) > 5 else "")


def _failures(lives: Lives, terms, failed: dict, burst: list, syntax: str) -> str:
    """The failures, grouped as they came: who, how, why and how often."""
    groups: list[list] = []
    for seq, kid in burst:
        key = (lives.who(kid, seq), failed.get(kid),
               reason_text(terms.iloc[seq], syntax, 100))
        if groups and groups[-1][0] == key:
            groups[-1][1] += 1
        else:
            groups.append([key, 1])
    parts = []
    for (who, how, reason), count in groups:
        times = f" {count} times" if count > 1 else ""
        verb = ("crashed during its start (in its init, before it acknowledged the start)"
                if how == "start" else "gave up" if how == "gave up" else "crashed")
        parts.append(f"{who} {verb}{times}: {reason}")
    return "; then ".join(parts)


def _gone(lives: Lives, top: str, raw) -> list[str]:
    """Names under ``top`` (and its own) that nobody held when the recording ended."""
    names = lives.names
    end = len(raw) - 1
    seen, todo, out = set(), [top], []
    while todo:
        pid = todo.pop(0)
        if pid in seen:
            continue
        seen.add(pid)
        todo += lives.children.get(pid, [])
        name = lives.name(pid)
        if not name or name in out or pid not in lives.exit_seq:
            continue
        if not any(names.name_at(g, end) == name for g in names.pids_named({name})):
            out.append(name)
    return out


def _dependency(facts: Facts, lives: Lives, raw, terms, kids: list[str], first: int) -> str:
    """The process the failing children sent to that exited shortly before
    they began to fail: what they were most likely missing. When they never
    reached it (a lookup by name found nobody) but their crashes say noproc,
    the last named process to exit before the failures is the likeliest."""
    gids = [lives.gid[k] for k in kids if k in lives.gid]
    for k in kids:    # earlier incarnations under the same name did the sending
        name = lives.name(k)
        if name:
            gids += list(lives.names.pids_named({name}))
    rows = np.flatnonzero((raw.kind == _SEND) & np.isin(raw.pid, gids))
    rows = rows[rows < first]
    texts = facts.store.id_texts()
    targets: set[str] = set()
    for peer in np.unique(raw.peer[rows]).tolist():
        text = texts[peer] if peer > 0 else None
        if isinstance(text, str) and text.startswith("<"):
            targets.add(text)
        elif isinstance(text, str):
            targets |= {texts[g] for g in lives.names.pids_named({text})}
    t0 = int(raw.ts_ns[first])
    exited = [(seq, t) for t, seq in lives.exit_seq.items()
              if seq < first and t0 - int(raw.ts_ns[seq]) <= _PERIOD_NS and t not in kids]
    gone = [(seq, t) for seq, t in exited if t in targets]
    said = "which they send to"
    if not gone and any(_mentions(terms.iloc[s], _NOPROC) for s, _ in
                        [(lives.exit_seq[k], k) for k in kids if k in lives.exit_seq]):
        gone = [(seq, t) for seq, t in exited if lives.name(t)]
        said = ("the last named process to exit before they began to fail; their crashes say "
                "noproc, a process they need was not there")
    if not gone:
        return ""
    seq, pid = max(gone)
    before = (t0 - int(raw.ts_ns[seq])) / 1e6
    return (f"They most likely depend on {lives.who(pid, seq)} ({said}): it had exited "
            f"({render(terms.iloc[seq], facts.syntax, 60)}, seq {seq}) {_ms(before)} before the "
            "first failure, and they crash without it.")


def _mentions(term: Any, atom: Atom, depth: int = 0) -> bool:
    if term == atom:
        return True
    if depth > 5 or not isinstance(term, (tuple, list)):
        return False
    return any(_mentions(t, atom, depth + 1) for t in term[:20])


def _ms(ms: float) -> str:
    return f"{ms:.1f} ms" if ms < 10 else f"{ms:,.0f} ms"


# -- one_for_one where a sibling depends on the restarted child ---------------

def wrong_strategy(facts: Facts) -> list[Cause]:
    lives = lifecycle(facts)
    store = facts.store
    successions = store.names().successions()
    if not successions:
        return []
    terms = store.frame()["term"]
    texts = store.id_texts()
    failures = abnormal_exits(facts)
    ts = store.raw().ts_ns
    out = []
    for seq, new, name, old in successions:
        old_pid, new_pid = texts[old], texts[new]
        sup = lives.parent.get(new_pid)
        if old_pid not in failures or sup is None or lives.parent.get(old_pid) != sup:
            continue
        crashed = lives.exit_seq[old_pid]
        for sibling in lives.children.get(sup, []):
            gone = lives.exit_seq.get(sibling)
            if sibling in (old_pid, new_pid) or (gone is not None and (
                    gone <= seq or ts[gone] - ts[seq] <= _RESTARTED_WITH_NS)):
                continue     # restarted with it (or gone by then): not left behind; an
                #              exit long after (the app stopped later) does not count
            path = _holds(facts, sibling, old_pid)
            if path is None:
                continue
            out.append(_strategy_cause(facts, lives, terms, sup, old_pid, new_pid, name,
                                       sibling, path, crashed, seq))
    return out


def _holds(facts: Facts, pid: str, wanted: str) -> str | None:
    """Where in ``pid``'s last recorded state the pid ``wanted`` is, or None."""
    state = state_of(facts, pid, "after", -1)
    return _find_pid(state, wanted, "") if state is not None else None


def _find_pid(term: Any, pid: str, path: str, depth: int = 0) -> str | None:
    if isinstance(term, Pid):
        return (path or "the whole state") if str(term) == pid else None
    if depth > 6:
        return None
    if isinstance(term, dict):
        items = [(f".{k}" if isinstance(k, Atom) else f"[{render(k, 'elixir', 30)}]", v)
                 for k, v in list(term.items())[:200]]
    elif isinstance(term, (tuple, list)):
        items = [(f"[{i}]", v) for i, v in enumerate(term[:200])]
    else:
        return None
    for step, value in items:
        found = _find_pid(value, pid, path + step, depth + 1)
        if found:
            return found
    return None


def _strategy_cause(facts: Facts, lives: Lives, terms, sup: str, old: str, new: str,
                    name: str, sibling: str, path: str, crashed: int, restarted: int) -> Cause:
    store = facts.store
    raw = store.raw()
    who_sup, who_sib = lives.who(sup), lives.who(sibling)
    gid = lives.gid.get(sibling)
    received = raw.pid == gid if gid is not None else np.zeros(len(raw), dtype=bool)
    received &= raw.kind == KIND_CODES["receive"]
    before = int(received[:crashed].sum())
    after = int(received[crashed:].sum())
    quiet = (f" It received {before} message(s) before the crash and {after} since."
             if before else "")
    text = (f"{who_sup} restarted {name} alone after it crashed "
            f"({reason_text(terms.iloc[crashed], facts.syntax, 100)}, seq {crashed}; the new "
            f"{name} is {new}, seq {restarted}), but its sibling {who_sib}, which it did not "
            f"restart, still holds the old pid {old} in its state ({path}): it depends on "
            f"{name}'s identity (it subscribed to it, or took its pid in init), and nothing "
            f"re-subscribes it to the new one.{quiet} A one_for_one strategy restarts only the "
            f"child that failed; with {who_sib} started after {name} under rest_for_one (or "
            f"one_for_all), {who_sup} would restart {who_sib} too and it would bind to the new "
            f"{name}. Or have {who_sib} monitor {name} and subscribe again on its 'DOWN'.")
    return Cause("wrong_strategy", 0.85, text, [crashed, restarted],
                 [who_sup, who_sib, name])
