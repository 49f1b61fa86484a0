"""A whole cluster, attached: every node, one store, traces that span them.

    >>> c = mic.attach_cluster("app1@host")      # finds app2, app3 ... and follows joins and leaves
    >>> with c.trace():
    ...     ...                                   # one agent per node, each with its own limits
    >>> c.messages()        # a send on app1 pairs with its receive on app2
    >>> c.clock             # per node: clock offset from ours, its uncertainty, the shift applied

Hidden connections are not transitive, so we connect to each node the seed
lists (``erlang:nodes/0``) and look again every second: a node that joins is
attached (and traced, when a trace runs), a node that leaves is reported and
the others go on. Timestamps are put on one clock: each node's offset from
ours is estimated from the rpc with the shortest round trip (left at zero
when it is within that round trip's uncertainty, as for nodes on one host),
and once a trace stops, any message received before it was sent moves the
receiving node's clock forward just enough (``c.clock["shift_us"]``), then
any send still stamped after its receive (``c.clock["moved"]``; see
``analysis/clocks.py``).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import numpy as np
import pandas as pd

from .agent.controller import Recording
from .agent.spec import TraceSpec
from .analysis.clocks import late_sends, node_shifts
from .analysis.facts import Facts
from .beam.node import LocalNode
from .beam.terms import Atom, Pid
from .beam.tls import client_context
from .errors import MicroscopeError, NodeDown, TraceError
from .render.names import erlang_module_name
from .session import Session, start_recording
from .session_base import SessionBase
from .store.event_store import EventStore

__all__ = ["Cluster", "ClusterRecording", "attach_cluster", "clock_offset"]

log = logging.getLogger(__name__)

OFFSET_SAMPLES = 8
FOLLOW_EVERY_S = 1.0


def clock_offset(session: Session, samples: int = OFFSET_SAMPLES) -> tuple[int, int]:
    """(offset_ns, uncertainty_ns): the node's clock minus ours, from the
    midpoint of the rpc with the shortest round trip (half of which bounds the error)."""
    best: tuple[int, int] | None = None
    for _ in range(samples):
        sent = time.time_ns()
        theirs = session.rpc("erlang", "system_time", [Atom("nanosecond")], 5)
        back = time.time_ns()
        if best is None or back - sent < best[1]:
            best = (theirs - (sent + back) // 2, back - sent)
    assert best is not None
    return best[0], best[1] // 2


class _Cookie:
    """The cookie, kept for nodes that join later; never shown."""

    def __init__(self, value: str | None):
        self.value = value

    def __repr__(self) -> str:
        return "<cookie hidden>"


class ClusterRecording:
    """One trace on every node: a Recording per node, into the cluster's store."""

    def __init__(self, cluster: "Cluster", spec_args: tuple, spec_options: dict):
        self.cluster = cluster
        self.recordings: dict[str, Recording] = {}
        self.left: dict[str, str] = {}          # node -> what happened to it
        self._args, self._options = spec_args, spec_options
        self.running = True

    def __repr__(self) -> str:
        s = self.status()
        return f"<ClusterRecording {len(self.recordings)} nodes {s['state']}: {s['events']} events>"

    def nodes(self) -> pd.DataFrame:
        """One row per node: state, events, dropped, and why it stopped if it did."""
        rows = []
        for node, rec in list(self.recordings.items()):
            s = rec.status()
            rows.append({"node": node, "state": s["state"], "events": s["events"],
                         "dropped": s["dropped"], "message": self.left.get(node, s["message"])})
        return pd.DataFrame(rows, columns=["node", "state", "events", "dropped", "message"])

    def status(self) -> dict[str, Any]:
        """The nodes' statuses summed, as ``Recording.status()`` has them (``nodes()``
        has them one by one)."""
        each = [rec.status() for rec in list(self.recordings.values())]
        hooks = {k: sum(s["state_hooks"][k] for s in each)
                 for k in ("requested", "installed", "pending", "not_installed")}
        elapsed = max((s["elapsed_s"] for s in each), default=0.0)
        events = sum(s["events"] for s in each)
        return {"state": "running" if self.running else "stopped", "events": events,
                "dropped": sum(s["dropped"] for s in each), "seen": sum(s["seen"] for s in each),
                "rate": events / max(elapsed, 1e-9), "elapsed_s": elapsed,
                "traced_processes": sum(s["traced_processes"] for s in each),
                "state_hooks": hooks, "nodes": len(each), "message": self.message,
                "notes": [note for s in each for note in s["notes"]]}

    @property
    def message(self) -> str | None:
        notes = list(self.left.values()) + [r.message for r in self.recordings.values()
                                            if r.message and r.source.split("#")[0]
                                            not in self.left]
        return " ".join(notes) or None

    def stop(self) -> dict[str, Any]:
        """Stop every node's trace, then put the nodes on one clock."""
        self.running = False
        for rec in list(self.recordings.values()):
            try:
                rec.stop()
            except MicroscopeError as exc:   # a node that went away meanwhile
                log.warning("stopping the trace on %s: %s", rec.source, exc)
        self.cluster.align_clocks()
        return self.status()

    def __enter__(self) -> "ClusterRecording":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class Cluster(SessionBase):
    """Every node of a cluster. ``sessions`` maps node name -> Session (sharing
    this store); every analysis view works across nodes and shows the node."""

    def __init__(self, local: LocalNode, cookie: _Cookie, attach_options: dict, follow: bool,
                 known_offsets: dict[str, int] | None = None):
        self._local = local
        self._cookie = cookie
        self._attach_options = attach_options
        super().__init__(Facts(EventStore()))
        self.node = ""                                # the seed, once attached
        self.sessions: dict[str, Session] = {}
        self._remotes: dict[str, Any] = {}            # node -> RemoteNode
        self.left: dict[str, float] = {}              # node -> when we saw it go
        self._offsets: dict[str, tuple[int, int]] = {}
        self._known_offsets = dict(known_offsets or {})
        self._shifts: dict[str, int] = {}
        self._moved: dict[str, int] = {}   # events moved one by one (late_sends)
        self._lock = threading.RLock()
        self._recording: ClusterRecording | None = None
        self._traces = 0
        self._stop = threading.Event()
        self._follower = threading.Thread(target=self._follow, name="microscope-cluster",
                                          daemon=True) if follow else None

    def __repr__(self) -> str:
        return f"<microscope Cluster {len(self.nodes)} nodes: {', '.join(self.nodes)}>"

    @property
    def attached(self) -> bool:
        return bool(self.nodes)

    @property
    def nodes(self) -> list[str]:
        """The nodes attached now."""
        with self._lock:
            return sorted(n for n, s in self.sessions.items() if s.attached)

    @property
    def clock(self) -> pd.DataFrame:
        """Per node: its clock's estimated offset from ours, the estimate's
        uncertainty, and the shift the store applied (all in µs); ``moved``: its
        events moved one by one to put a send before its receive."""
        with self._lock:
            rows = [{"node": n, "offset_us": o / 1e3, "uncertainty_us": u / 1e3,
                     "applied_us": self._applied(n) / 1e3, "shift_us": self._shifts.get(n, 0) / 1e3,
                     "moved": self._moved.get(n, 0)}
                    for n, (o, u) in sorted(self._offsets.items())]
        return pd.DataFrame(rows, columns=["node", "offset_us", "uncertainty_us", "applied_us",
                                           "shift_us", "moved"])

    def _applied(self, node: str) -> int:
        offset, uncertainty = self._offsets.get(node, (0, 0))
        return offset if abs(offset) > uncertainty else 0

    # -- membership

    def add_node(self, node: str) -> Session | None:
        """Attach ``node`` (a cluster member found later, or one named by hand)."""
        with self._lock:
            known = self.sessions.get(node)
            if known is not None and known.attached:
                return known
        try:
            remote = self._local.connect(node, self._cookie.value, **self._attach_options)
        except MicroscopeError as exc:
            # A node that left may still be listed by the others for a moment.
            (log.debug if node in self.left else log.warning)(
                "could not attach to cluster member %s: %s", node, exc)
            return None
        session = Session(self._local, remote, store=self.store)
        with self._lock:
            self.sessions[remote.name] = session
            self._remotes[remote.name] = remote
            self.left.pop(remote.name, None)
            known = self._known_offsets.get(remote.name)
            self._offsets[remote.name] = ((known, 0) if known is not None
                                          else clock_offset(session))
            recording = self._recording
        if recording is not None and recording.running:
            self._trace_node(recording, session)
        return session

    def _members(self) -> set[str]:
        """Every visible node the attached ones know of (ours is hidden: never listed)."""
        found: set[str] = set()
        for session in list(self.sessions.values()):
            if session.attached:
                try:
                    found |= {str(n) for n in session.rpc("erlang", "nodes", [], 5)}
                except MicroscopeError:
                    continue
                found.add(session.node)
        return found

    def _follow(self) -> None:
        while not self._stop.wait(FOLLOW_EVERY_S):
            try:
                self.refresh()
            except Exception:  # noqa: BLE001 - the follower must outlive one bad poll
                log.exception("following the cluster's membership failed once")

    def refresh(self) -> None:
        """Attach nodes that joined; note nodes that left (their events stay)."""
        for node, session in list(self.sessions.items()):
            if not session.attached and node not in self.left:
                self.left[node] = time.time()
                recording = self._recording
                if recording is not None and node in recording.recordings:
                    recording.left[node] = (f"{node} left the cluster mid-trace; its events "
                                            "up to then are kept, the other nodes go on")
                log.warning("%s left the cluster; the other nodes go on", node)
        for node in sorted(self._members() - set(self.nodes)):
            self.add_node(node)      # a new member, or one that left and came back

    # -- tracing

    def trace(self, *procs: Any, **options: Any) -> ClusterRecording:
        """Record on every node (and on nodes that join while it runs), each
        node's agent with its own limits (the options of ``Session.trace``).
        ``procs`` are pids (traced on their node) or names (traced on every
        node that has them)."""
        with self._lock:
            if self._recording is not None and self._recording.running:
                raise TraceError("a cluster trace is already running; stop it first")
            TraceSpec.build(procs, **options)       # bad options fail here, before any node
            self.facts.note_tree(self.supervision_tree())     # every node's, now
            recording = ClusterRecording(self, procs, options)
            self._recording = recording
            self._traces += 1
        for node in self.nodes:
            self._trace_node(recording, self.sessions[node])
        if not recording.recordings:
            raise TraceError(f"none of {', '.join(self.nodes)} has any of {list(procs)}")
        return recording

    def _trace_node(self, recording: ClusterRecording, session: Session) -> None:
        procs = [p for p in recording._args if _on_node(session, p)]
        if recording._args and not procs:
            return
        spec = TraceSpec.build(procs, **recording._options)
        try:
            rec = start_recording(session, spec, f"{session.node}#{self._traces}",
                                  clock_offset_ns=self._applied(session.node))
        except (NodeDown, MicroscopeError) as exc:
            log.warning("could not trace %s: %s", session.node, exc)
            return
        recording.recordings[session.node] = rec

    def align_clocks(self) -> dict[str, int]:
        """Enforce send-before-receive (``analysis.clocks``): move whole nodes'
        clocks as little as it takes, then any send still stamped after its
        receive. Returns the node shifts (ns) made now."""
        total: dict[str, int] = {}
        send, recv = self._cross_pairs()   # by seq: shifting clocks does not change them
        for _ in range(3):              # checked again on what the shift left
            raw = self.store.raw()
            shift, _ = node_shifts(raw, send, recv)
            for i in np.flatnonzero(shift):
                node, delta = raw.node_names[i], int(shift[i])
                self.store.shift_clock(node, delta)
                total[node] = total.get(node, 0) + delta
                with self._lock:
                    self._shifts[node] = self._shifts.get(node, 0) + delta
            self.facts.forget()
            if not shift.any():
                break
        for _ in range(3):              # a move can make room for the next one
            raw = self.store.raw()
            moves = late_sends(raw, send, recv)
            for node in {raw.node_names[raw.node[q]] for q in moves}:
                seqs = np.array([q for q in moves if raw.node_names[raw.node[q]] == node])
                self.store.shift_clock(node, np.array([moves[q] for q in seqs]), seqs)
                with self._lock:
                    self._moved[node] = self._moved.get(node, 0) + len(seqs)
            if not moves:
                break
            self.facts.forget()
        return total

    def _cross_pairs(self) -> tuple[np.ndarray, np.ndarray]:
        """The send and receive seqs of every message between nodes."""
        table = self.messages()
        pairs = table[table["send_seq"].notna() & table["receive_seq"].notna()]
        raw = self.store.raw()
        send = pairs["send_seq"].to_numpy(dtype=np.int64)
        recv = pairs["receive_seq"].to_numpy(dtype=np.int64)
        across = raw.node[send] != raw.node[recv]
        return send[across], recv[across]

    # -- lifecycle

    def processes(self) -> pd.DataFrame:
        """Every node's processes, with a ``node`` column (pids name their node)."""
        return self._per_node(lambda s: s.processes(), ["pid"])

    def supervision_tree(self) -> pd.DataFrame:
        """Every node's process tree, one forest, with a ``node`` column."""
        return self._per_node(lambda s: s.supervision_tree(), ["pid", "parent"])

    def _per_node(self, read: Any, pid_columns: list[str]) -> pd.DataFrame:
        frames = []
        for node, session in sorted(self.sessions.items()):
            if session.attached:
                table = read(session).assign(node=node)
                for column in pid_columns:       # as the cluster's recordings write them
                    table[column] = [f"{p}@{node}" if isinstance(p, str) else p
                                     for p in table[column]]
                frames.append(table)
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()

    def detach(self) -> None:
        """Stop the trace, unload every agent, disconnect from every node."""
        self._stop.set()
        if self._recording is not None and self._recording.running:
            self._recording.stop()
        for session in list(self.sessions.values()):
            try:
                session.detach()
            except MicroscopeError:
                pass
        self._local.close()

    def __enter__(self) -> "Cluster":
        return self

    def __exit__(self, *exc: object) -> None:
        self.detach()


def _on_node(session: Session, proc: Any) -> bool:
    """Whether ``proc`` (a pid, its text, or a name) is on this node."""
    if isinstance(proc, Pid):
        return str(proc.node) == session.node
    text = str(proc)
    if text.startswith("<"):
        return "@" not in text or text.endswith("@" + session.node)
    found = session.eval_erlang("try whereis(binary_to_existing_atom(N, utf8)) "
                                "catch error:badarg -> undefined end.", timeout=5,
                                N=erlang_module_name(text).encode())
    return isinstance(found, Pid)


def attach_cluster(seed: str, cookie: str | None = None, *, follow: bool = True,
                   clock_offsets: dict[str, int] | None = None,
                   net_ticktime: float | None = None, timeout: float = 10.0,
                   epmd_port: int | None = None, tls: Any = None) -> Cluster:
    """Attach to ``seed`` and every node of its cluster (hidden connections are
    not transitive: one to each). With ``follow`` (default), nodes that join
    later are attached too, and traced if a trace runs. ``clock_offsets``
    (node -> ns its clock is ahead of ours, e.g. from chrony) replaces the
    estimate for those nodes. Other options as ``attach()``."""
    options = {"net_ticktime": net_ticktime, "timeout": timeout, "epmd_port": epmd_port,
               "ssl_context": client_context(tls)}
    local = LocalNode()
    cluster = Cluster(local, _Cookie(cookie), options, follow, clock_offsets)
    try:
        first = cluster.add_node(seed)
        if first is None:
            remote = local.connect(seed, cookie, **options)   # raises the attach error itself
            remote.close()
        cluster.node = first.node if first is not None else seed
        cluster.refresh()
    except BaseException:
        local.close()
        raise
    if cluster._follower is not None:
        cluster._follower.start()
    return cluster
