"""Process lives as the recording saw them: who spawned whom, who was linked
to whom, who exited when, which starts finished, and what each process did
next. What the detectors of supervision, starts, links and calls read.

    lives = lifecycle(facts)
    lives.parent["<0.120.0>"]        # "<0.94.0>": spawned it (or was its parent at the start)
    lives.children["<0.94.0>"]       # ["<0.120.0>", ...], in spawn order
    lives.exit_seq["<0.120.0>"]      # its exit event
    lives.linked("<0.94.0>")         # every pid it was linked to while recording
    lives.supervisors                # supervisors: so at the start, or spawning and linking starts
    lives.ack["<0.120.0>"]           # (seq, True): its start returned {ok, ...}
    lives.who("<0.120.0>", 44)       # the name it held at seq 44 (else its last), or the pid
    next_act(facts, "<0.97.0>", 57)  # its own next act after seq 57 (a send, a timeout...)

A start is proc_lib's: the process ``proc_lib:start[_link]`` spawns (every
gen_server, gen_statem and supervisor start, a supervisor's restarts) sends
``{ack, Self, Return}`` to its parent when its init returns (``{nack, ...}``
from OTP 26 when it fails), and the parent waits in start_link until then.
A start with no ack before the process exited crashed during its init.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..beam.etf import decode
from ..beam.terms import Atom
from ..render.elixir import render
from ..render.names import format_mfa, known_as
from ..store.otp import normal_exit, state_recorded
from ..store.schema import ACTS, HOOK_BASE, KIND_CODES
from .facts import Facts

__all__ = ["Lives", "lifecycle", "next_act", "prev_act", "acts_of", "receives_of",
           "exit_reason", "reason_text", "in_frames", "restarted_as", "restart_text",
           "state_of", "abnormal_exits"]

_SPAWN, _EXIT, _LINK, _SEND, _STATE, _HOOK = (KIND_CODES[k] for k in
                                               ("spawn", "exit", "link", "send", "state", "hook"))


def _spellings(name: bytes) -> tuple[bytes, ...]:
    n = bytes([len(name)])
    return (b"w" + n + name, b"s" + n + name, b"v\x00" + n + name, b"d\x00" + n + name)


# {ack, Pid, Return} / {nack, Pid, Return}: proc_lib's word to the parent
_ACK = tuple(b"\x83h\x03" + a for a in _spellings(b"ack"))
_NACK = tuple(b"\x83h\x03" + a for a in _spellings(b"nack"))
_OK = Atom("ok")
_RECEIVES = np.zeros(256, dtype=bool)
_RECEIVES[KIND_CODES["receive"]] = True


@dataclass
class Lives:
    parent: dict[str, str] = field(default_factory=dict)
    children: dict[str, list[str]] = field(default_factory=dict)
    spawn_seq: dict[str, int] = field(default_factory=dict)
    spawn_mfa: dict[str, str] = field(default_factory=dict)
    exit_seq: dict[str, int] = field(default_factory=dict)
    links: dict[str, set[str]] = field(default_factory=dict)
    ack: dict[str, tuple[int, bool]] = field(default_factory=dict)
    gid: dict[str, int] = field(default_factory=dict)
    supervisors: set[str] = field(default_factory=set)
    names: Any = None
    store: Any = None

    def linked(self, pid: str) -> set[str]:
        return self.links.get(pid, set())

    def name(self, pid: str, seq: int | None = None) -> str | None:
        """The name ``pid`` held at ``seq`` (a process lets go of its name as
        it dies, so the last one it held, else)."""
        gid = self.gid.get(pid)
        if gid is None and self.store is not None and str(pid).startswith("<"):
            try:
                gid = self.gid[pid] = min(self.store.pid_ids(pid))
            except Exception:   # a pid no event names
                return None
        if gid is None or self.names is None:
            return None
        if seq is not None:
            held = self.names.name_at(gid, seq)
            if held:
                return held
        spans = self.names.spans(gid)
        return next((n for _, n in reversed(spans) if n), None)

    def who(self, pid: str, seq: int | None = None) -> str:
        return known_as(self.name(pid, seq), pid)

    def started(self, pid: str) -> bool:
        """Spawned while recording by proc_lib's start (it owes its parent an ack)."""
        return self.spawn_mfa.get(pid, "").endswith("init_p/5")

    def start_failed(self, pid: str) -> bool:
        """A proc_lib start that exited before its init returned {ok, ...}."""
        if pid not in self.exit_seq or not self.started(pid):
            return False
        ack = self.ack.get(pid)
        return ack is None or not ack[1] or ack[0] > self.exit_seq[pid]


def lifecycle(facts: Facts) -> Lives:
    return facts.cached("lifecycle", lambda: _build(facts))


def _build(facts: Facts) -> Lives:
    store = facts.store
    raw = store.raw()
    texts = store.id_texts()
    lives = Lives(names=store.names(), store=store)
    for row in facts.initial_tree_rows():
        if row.get("kind") == "supervisor":
            lives.supervisors.add(row["pid"])
        if row.get("parent"):
            lives.parent[row["pid"]] = row["parent"]
            lives.children.setdefault(row["parent"], []).append(row["pid"])
    for gid, relation, peer in store.initial_relations:
        if relation == "link":
            a, b = texts[gid], texts[peer]
            lives.links.setdefault(a, set()).add(b)
            lives.links.setdefault(b, set()).add(a)
            lives.gid.setdefault(a, int(gid))
            lives.gid.setdefault(b, int(peer))
    kinds = raw.kind
    exits = np.flatnonzero(kinds == _EXIT)
    for seq, pid, gid in zip(exits[::-1].tolist(), texts[raw.pid[exits[::-1]]].tolist(),
                             raw.pid[exits[::-1]].tolist()):
        lives.exit_seq[pid] = seq            # walked backwards: the first exit stays
        lives.gid[pid] = gid
    rows = np.flatnonzero((kinds == _SPAWN) | (kinds == _LINK))
    peers = raw.peer[rows]
    # the peer of a spawn or link is a pid: told once per distinct id, not per row
    distinct = np.unique(peers)
    is_pid = np.array([isinstance(t, str) and t.startswith("<") for t in texts[distinct]],
                      dtype=bool) if len(distinct) else np.zeros(0, dtype=bool)
    rows = rows[np.isin(peers, distinct[is_pid])]
    spawned_pairs = []
    for seq, kind, gid, peer, mfa, pid, other in zip(
            rows.tolist(), kinds[rows].tolist(), raw.pid[rows].tolist(),
            raw.peer[rows].tolist(), raw.mfa[rows].tolist(), texts[raw.pid[rows]].tolist(),
            texts[raw.peer[rows]].tolist()):
        lives.gid.setdefault(pid, gid)
        lives.gid.setdefault(other, peer)
        if kind == _SPAWN:
            if other in lives.parent and lives.parent[other] != pid:
                lives.children.get(lives.parent[other], []).remove(other)
            if lives.parent.get(other) != pid:
                lives.children.setdefault(pid, []).append(other)
            lives.parent[other] = pid
            lives.spawn_seq[other] = seq
            lives.spawn_mfa[other] = str(texts[mfa]) if mfa > 0 else ""
            spawned_pairs.append((peer, gid))
        else:
            lives.links.setdefault(pid, set()).add(other)
            lives.links.setdefault(other, set()).add(pid)
            if lives.parent.get(other) == pid and lives.started(other):
                lives.supervisors.add(pid)     # spawned and linked a started child
    _acks(raw, texts, spawned_pairs, lives)
    return lives


def _acks(raw, texts, pairs: list[tuple[int, int]], lives: Lives) -> None:
    """Each spawned child's ack to its parent: found among the sends from a
    child to its own parent (few), by their first bytes."""
    if not pairs:
        return
    width = int(max(raw.pid.max(initial=0), raw.peer.max(initial=0))) + 1
    wanted = np.array([c * width + p for c, p in pairs], dtype=np.int64)
    sends = np.flatnonzero(raw.kind == _SEND)
    keys = raw.pid[sends].astype(np.int64) * width + raw.peer[sends].astype(np.int64)
    for seq in sends[np.isin(keys, wanted)].tolist():
        payload = raw.payload(seq)
        ok = payload.startswith(_ACK)
        if not (ok or payload.startswith(_NACK)):
            continue
        child = texts[int(raw.pid[seq])]
        if child in lives.ack:
            continue
        if ok:
            try:
                term = decode(payload)
                ret = term[2]
                ok = ret == _OK or (isinstance(ret, tuple) and bool(ret) and ret[0] == _OK)
            except Exception:   # an undecodable ack says nothing
                continue
        lives.ack[child] = (seq, ok)


# term_to_binary(normal) and (shutdown), however the node spells the atoms
_CALM = frozenset(b"\x83" + a for name in (b"normal", b"shutdown") for a in _spellings(name))


def abnormal_exits(facts: Facts) -> dict[str, int]:
    """pid -> exit seq of each process that exited with an abnormal reason
    (``normal_exit`` says no); the common calm reasons told by their bytes."""
    def build() -> dict[str, int]:
        lives = lifecycle(facts)
        raw = facts.store.raw()
        terms = facts.store.frame()["term"]
        return {pid: seq for pid, seq in lives.exit_seq.items()
                if raw.payload(seq) not in _CALM and not normal_exit(terms.iloc[seq])}
    return facts.cached("abnormal exits", build)


def exit_reason(facts: Facts, lives: Lives, pid: str) -> Any:
    seq = lives.exit_seq.get(pid)
    return None if seq is None else facts.store.frame()["term"].iloc[seq]


# -- what a process did next

def acts_of(facts: Facts) -> dict[int, np.ndarray]:
    """pid id -> the seqs of its own acts (sends, exits, callbacks, timeouts...), sorted."""
    return facts.cached("acts by pid", lambda: _by_pid(facts, ACTS))


def receives_of(facts: Facts) -> dict[int, np.ndarray]:
    """pid id -> the seqs of the messages it received, sorted."""
    return facts.cached("receives by pid", lambda: _by_pid(facts, _RECEIVES))


def _by_pid(facts: Facts, mask: np.ndarray) -> dict[int, np.ndarray]:
    raw = facts.store.raw()
    rows = np.flatnonzero(mask[raw.kind])
    pids = raw.pid[rows]
    order = np.argsort(pids, kind="stable")
    rows, pids = rows[order], pids[order]
    cuts = np.flatnonzero(np.diff(pids)) + 1
    return {int(group_pids[0]): group for group, group_pids in
            zip(np.split(rows, cuts), np.split(pids, cuts)) if len(group)}


def next_act(facts: Facts, gid: int, seq: int) -> int | None:
    """The seq of process ``gid``'s first own act after ``seq``, or None."""
    acts = acts_of(facts).get(gid)
    if acts is None:
        return None
    k = int(np.searchsorted(acts, seq, side="right"))
    return int(acts[k]) if k < len(acts) else None


def prev_act(facts: Facts, gid: int, seq: int) -> int | None:
    """The seq of process ``gid``'s last own act before ``seq``, or None."""
    acts = acts_of(facts).get(gid)
    if acts is None:
        return None
    k = int(np.searchsorted(acts, seq, side="left")) - 1
    return int(acts[k]) if k >= 0 else None


def reason_text(reason: Any, syntax: str, limit: int = 100) -> str:
    """An exit reason in a few words: ``{:badmatch, []} in :m.init/1`` (the
    error and the top frame of its stacktrace), or the reason itself."""
    if (isinstance(reason, tuple) and len(reason) == 2 and isinstance(reason[1], list)
            and reason[1] and isinstance(reason[1][0], tuple) and len(reason[1][0]) == 4):
        module, function, arity, _ = reason[1][0]
        arity = len(arity) if isinstance(arity, list) else arity
        return f"{render(reason[0], syntax, limit)} in {format_mfa(module, function, arity, syntax)}"
    return render(reason, syntax, limit)


def in_frames(reason: Any, function: str, arity: int | None = None) -> tuple | None:
    """The first frame of an exception's stacktrace in ``function`` (of that
    arity), or None: where in the code an exit reason was raised."""
    if not (isinstance(reason, tuple) and len(reason) == 2 and isinstance(reason[1], list)):
        return None
    for frame in reason[1][:12]:
        if isinstance(frame, tuple) and len(frame) == 4 and str(frame[1]) == function:
            args = frame[2]
            n = len(args) if isinstance(args, list) else args
            if arity is None or n == arity:
                return frame
    return None


def restarted_as(facts: Facts, lives: Lives, pid: str) -> tuple[int, str] | None:
    """(register seq, new pid) of the process that took ``pid``'s name after it."""
    gid = lives.gid.get(pid)
    if gid is None:
        return None
    store = facts.store
    for seq, new, _, old in store.names().successions():
        if old == gid:
            return seq, store.id_texts()[new]
    return None


def restart_text(facts: Facts, lives: Lives, pid: str) -> tuple[str, int] | None:
    """"It was restarted as <0.9.0> (seq 40), and the restart lost what it
    held: ... became ...", with the seq of the restart; None if it was not."""
    found = restarted_as(facts, lives, pid)
    if found is None:
        return None
    seq, new = found
    text = f"It was restarted as {new} (seq {seq})"
    before, first = state_of(facts, pid, "after", -1), state_of(facts, new, "before", 0)
    if before is not None and first is not None and before != first:
        text += (f", and the restart lost what it held: {render(before, facts.syntax, 90)} "
                 f"became {render(first, facts.syntax, 90)} (at its first recorded callback)")
    return text + ".", seq


def state_of(facts: Facts, pid: str, column: str, at: int) -> Any:
    """``pid``'s state before its first (``at`` 0) or after its last (-1)
    recorded callback, if the hook copied it: one state event decoded. With
    no callback recorded, the state it had when its hook went in (the hook
    event that carries it), which is its state still."""
    try:
        gids = facts.pids(pid)
    except Exception:     # silent: never recorded
        return None
    raw = facts.store.raw()
    acts = acts_of(facts)
    seqs = [s for g in gids for s in (acts.get(g, ())) if raw.kind[s] == _STATE]
    terms = facts.store.frame()["term"]
    if not seqs:
        based = np.flatnonzero((raw.kind == _HOOK) & (raw.aux == HOOK_BASE)
                               & np.isin(raw.pid, list(gids)))
        value = terms.iloc[int(based[-1])] if len(based) else None
        return value if value is not None and state_recorded(value) else None
    ordered = sorted(seqs)
    for seq in (ordered[::-1] if at < 0 else ordered)[:50]:     # the nearest one copied
        step = terms.iloc[seq]
        value = step.get(column) if isinstance(step, dict) else None
        if value is not None and state_recorded(value):
            return value
    return None
