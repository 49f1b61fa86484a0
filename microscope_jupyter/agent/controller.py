"""Python side of the in-node agent: load it, start and stop traces, ingest batches.

    rec = Recording.start(remote, local, store, spec)   # Session.trace() does this
    rec.status()      # {'state': 'running', 'events': 5120, 'dropped': 0, 'rate': ...}
    rec.stop()

The agent sends batches to a Python-side mailbox (the *owner*). It monitors
that mailbox, so closing it, losing the connection, or killing the kernel
all make the agent remove everything it set. An ingest thread moves
batches from the mailbox into the EventStore; it does no per-event work.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import pandas as pd

from ..beam.etf import binary_bytes
from ..beam.node import LocalNode, Mailbox, RemoteNode
from ..beam.terms import Atom, Pid
from ..errors import NodeDown
from ..store.event_store import EventStore
from .beam_file import AGENT_MODULE, ensure_agent, report_swept
from .spec import TraceSpec, spec_error
from .tables import read_pids, read_relations

__all__ = ["Recording"]

log = logging.getLogger(__name__)

DETAILS_WAIT_S = 30.0   # how long Recording.info waits for the details after the start reply

A_BATCH, A_STOPPED = Atom("microscope_batch"), Atom("microscope_stopped")
A_DETAILS = Atom("microscope_details")
A_DOWN = Atom("DOWN")
# A controller that ends normally has told us why (a reply, or microscope_stopped);
# a dropped connection is NodeDown's to report.
QUIET_ENDS = (Atom("normal"), Atom("noconnection"))


class Recording:
    """A running (or finished) trace. Also a context manager: the trace stops on exit."""

    def __init__(self, remote: RemoteNode, owner: Mailbox, agent: Pid, info: dict,
                 store: EventStore, source: str, spec: TraceSpec):
        self._remote = remote
        self._owner = owner
        self.agent = agent
        self._info = info
        # Set when the agent's start details (hooks asked for, names, links
        # and monitors) are in: they follow the start reply.
        self._details = threading.Event()
        self.spec = spec
        self._store = store
        self.source = source
        self.first_seq = len(store)  # events from here on belong to this recording
        self.started_at = time.monotonic()
        self.stopped_at: float | None = None
        self.state = "running"
        self.message: str | None = None
        self.notes: list[str] = []   # what the start found worth one line (Session.trace)
        self._events = 0
        self._batches = 0
        self._landed = threading.Condition()   # notified as each batch lands
        self._seen = 0
        self._dropped = 0
        self._final_stats: dict | None = None
        self._done = threading.Event()
        self.pulled_from: Pid | None = None   # the flight recorder, for a pulled recording
        self._agent_ref: Any = None
        self._ingest = threading.Thread(target=self._ingest_loop, name=f"microscope-ingest-{source}",
                                        daemon=True)
        self._ingest.start()

    # -- starting

    @classmethod
    def start(cls, remote: RemoteNode, local: LocalNode, store: EventStore,
              spec: TraceSpec, source: str, clock_offset_ns: int = 0) -> "Recording":
        """``clock_offset_ns``: how far the node's clock is ahead of ours (a
        cluster's alignment); its events are stored on our clock."""
        ensure_agent(remote)
        owner = local.mailbox()
        owner.watch(remote)  # a dropped connection ends ingestion, loudly
        try:
            reply = remote.rpc(AGENT_MODULE, "start", [owner.pid, spec.to_agent_opts()], 90)
        except BaseException:
            owner.close()
            raise
        if not (isinstance(reply, tuple) and reply[0] == Atom("ok")):
            owner.close()
            reason = reply[1] if isinstance(reply, tuple) and len(reply) == 2 else reply
            raise spec_error(reason, remote.name,
                             lambda: remote.rpc("erlang", "registered", [], 10))
        _, agent, info = reply
        info = {str(k): v for k, v in info.items()}
        info["backend"] = str(info["backend"])  # "session" (OTP 27+) or "legacy"
        info["monitors"] = str(info.get("monitors", "off"))  # tracked | unavailable | off
        info["logs"] = str(info.get("logs", "off"))  # on | unavailable | off
        shift = clock_offset_ns * info["native_per_second"] // 1_000_000_000
        store.add_source(source, remote.name, info["time_offset"] - shift,
                         info["native_per_second"], details_follow=True)
        recording = cls(remote, owner, agent, info, store, source, spec)
        # A controller killed outright (exit/2, a purge of the agent) says nothing:
        # its DOWN is how the recording learns it ended.
        recording._agent_ref = remote.monitor(owner, agent)
        report_swept(remote.name, info.get("swept", 0))
        if info.get("skipped_foreign"):
            log.warning("%d processes are traced by another tool and were left alone",
                        info["skipped_foreign"])
        if info["monitors"] == "unavailable":
            log.warning("monitors are not tracked in this trace: another tool is call-tracing "
                        "on this node (before OTP 27 trace patterns are node-wide), or modules= "
                        "names erlang:monitor/demonitor itself")
        if info["logs"] == "unavailable":
            log.warning("the node's log is not recorded in this trace: every logger handler id "
                        "the agent may use is taken (8 traces or flight recorders run on %s)",
                        remote.name)
        return recording

    @classmethod
    def pulled(cls, remote: RemoteNode, owner: Mailbox, recorder: Pid, info: dict,
               store: EventStore, source: str, spec: TraceSpec, stats: dict) -> "Recording":
        """A flight recorder's batches, sent by its ring to ``owner``: a finished
        recording once every one of ``stats["sent"]`` is in the store."""
        recording = cls(remote, owner, recorder, info, store, source, spec)
        recording.pulled_from = recorder
        recording._finish("stopped", stats)
        recording.stop()
        return recording

    @property
    def info(self) -> dict[str, Any]:
        """What the agent reported at start: tracer, backend, counts, hooks asked for."""
        self._details.wait(DETAILS_WAIT_S)
        return self._info

    # -- status

    def __repr__(self) -> str:
        s = self.status()
        return (f"<Recording {self.source} {s['state']}: {s['events']} events, "
                f"{s['dropped']} dropped, {s['elapsed_s']:.1f} s>")

    def status(self) -> dict[str, Any]:
        """Counts, rate and drops as the Python side has them right now."""
        end = self.stopped_at or time.monotonic()
        elapsed = max(1e-9, end - self.started_at)
        return {
            "state": self.state,
            "events": self._events,
            "dropped": self._dropped,
            "seen": self._seen,
            "rate": self._events / elapsed,
            "elapsed_s": elapsed,
            "traced_processes": self._info.get("traced", 0),
            "state_hooks": self._hook_counts(),
            "monitors": self._info.get("monitors", "off"),
            "message": self.message,
            "notes": list(self.notes),
        }

    def hooks(self) -> pd.DataFrame:
        """One row per GenServer whose state this trace asked to record: ``status``
        is ``installed`` (from ``installed_seq`` on), ``pending`` (the process has
        not reached the request yet: its mailbox is backlogged), or ``not
        installed`` with the reason."""
        requested = [str(p) for p in self.info.get("hook_requests", [])]
        store = self._store
        installed: dict[str, int] = {}
        for seq, gid in store.landmarks("hook", self.first_seq):
            installed.setdefault(store.id_text(gid), seq)
        exited = {store.id_text(gid) for _, gid in store.landmarks("exit", self.first_seq)}
        names = {str(pid): name for _, pid, name in store.initial_names}
        rows = []
        for pid in requested:
            if pid in installed:
                status = "installed"
            elif pid in exited:
                status = "not installed: the process exited before it reached the request"
            elif self.state != "running":
                status = ("not installed: the process never reached the request in its mailbox "
                          "(it was backlogged); its transitions are missing")
            else:
                status = "pending"
            rows.append((pid, names.get(pid), status, installed.get(pid)))
        frame = pd.DataFrame(rows, columns=["pid", "name", "status", "installed_seq"])
        frame["installed_seq"] = frame["installed_seq"].astype("Int64")
        return frame

    def _hook_counts(self) -> dict[str, int]:
        # No wait on the start details (the status line shows at once): none known, none counted.
        if not self._info.get("hook_requests"):
            return {"requested": 0, "installed": 0, "pending": 0, "not_installed": 0}
        status = self.hooks()["status"]
        return {"requested": len(status), "installed": int((status == "installed").sum()),
                "pending": int((status == "pending").sum()),
                "not_installed": int(status.str.startswith("not installed").sum())}

    @property
    def running(self) -> bool:
        return self.state == "running"

    # -- stopping

    def stop(self, timeout: float = 30.0) -> dict[str, Any]:
        """Stop tracing; every event the agent kept is in the store when this returns."""
        if self.state == "running" and self._remote.alive:
            try:
                reply = self._remote.rpc(AGENT_MODULE, "stop", [self.agent], timeout)
            except NodeDown:
                reply = None
            if isinstance(reply, tuple) and reply[0] == Atom("ok"):
                self._finish("stopped", _stats(reply[1]))
        self._wait_for_ingest(timeout)
        self._settle_details(timeout if self._remote.alive else 0.0)
        self._owner.close()
        self._done.set()
        if self.state == "running":
            self.state = "stopped"
            self.stopped_at = time.monotonic()
        self._warn_missing_hooks()
        return self.status()

    def _settle_details(self, timeout: float) -> None:
        """The start details are in, or will never be: readers stop waiting."""
        if not self._details.wait(timeout):
            self._store.details_lost(self.source)
            self._details.set()

    def _warn_missing_hooks(self) -> None:
        # A pulled ring has lost its oldest batches, install events among them.
        if not self.info.get("hook_requests") or self.pulled_from is not None:
            return
        hooks = self.hooks()
        missing = hooks[hooks["status"].str.contains("never reached")]
        if len(missing):
            who = ", ".join((missing["name"].fillna(missing["pid"])).head(5))
            log.warning("state was not recorded for %d GenServer(s) whose mailbox was too "
                        "backlogged to take the hook request during the trace: %s; see "
                        "rec.hooks()", len(missing), who)

    def eval_traced(self, code: str, lang: str = "elixir", timeout: float = 30.0) -> Any:
        """Run ``code`` on the node in a fresh process this trace follows; its value.

        Raises BadRpc with the remote error if the code raised, and RpcTimeout if it
        was still running after ``timeout`` seconds: it is killed on the node then.
        """
        from ..errors import BadRpc, RpcTimeout

        reply = self._remote.rpc(AGENT_MODULE, "eval_traced",
                                 [self.agent, Atom(lang), code, int(timeout * 1000)],
                                 timeout + 5)
        if isinstance(reply, tuple) and reply and reply[0] == Atom("ok"):
            return reply[1]
        reason = reply[1] if isinstance(reply, tuple) and len(reply) == 2 else reply
        if reason == Atom("timeout"):
            raise RpcTimeout(f"the {lang} code was still running on {self._remote.name} after "
                             f"{timeout:g} s, so it was killed there; make it return sooner, or "
                             "give it longer (timeout=, or %%trace --for)")
        if isinstance(reason, tuple) and len(reason) == 3 and isinstance(reason[2], (str, bytes)):
            # {Class, Reason, Text}: the error as the language's shell prints it
            text = reason[2].decode("utf-8", "replace") if isinstance(reason[2], bytes) else reason[2]
            raise BadRpc(f"the {lang} code raised on {self._remote.name}: {text}", reason[:2])
        from ..render.elixir import render

        raise BadRpc(f"the {lang} code raised on {self._remote.name}: "
                     f"{render(reason, 'elixir', 400)}", reason)

    def __enter__(self) -> "Recording":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def wait(self, timeout: float | None = None) -> dict[str, Any]:
        """Block until the trace stops by itself (a limit or its duration)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.state == "running":
            if deadline is not None and time.monotonic() > deadline:
                break
            time.sleep(0.05)
        if self.state != "running":
            self._wait_for_ingest(10)
        return self.status()

    def _finish(self, reason: str, stats: dict[str, Any]) -> None:
        if self._final_stats is not None:
            return
        self._final_stats = stats
        self.stopped_at = time.monotonic()
        self.state = "stopped" if reason in ("stopped", "owner_down") else reason
        kept, dropped = stats.get("kept", 0), stats.get("dropped", 0)
        if reason == "max_events":
            self.message = (f"Tracing stopped after {kept:,} events (max_events); "
                            "trace again with a higher max_events= to record more.")
        elif reason == "overload":
            self.message = (f"Tracing stopped to protect the node: the tracer fell "
                            f"{self.spec.max_queue:,} events behind ({dropped:,} dropped); "
                            "narrow the trace to fewer processes or lower max_rate=.")
        elif reason == "duration":
            self.message = f"Tracing stopped after its duration of {self.spec.duration_s:g} s."
        elif reason == "agent_died":
            self.message = (f"The agent on {self._remote.name} ended without stopping the trace "
                            f"(exit reason: {stats['reason']}); the events up to then are kept. "
                            "What it could not undo is cleared by the next trace or at detach.")
        elif dropped:
            self.message = (f"{dropped:,} events were dropped under load (max_rate="
                            f"{self.spec.max_rate:,}/s); they are counted in 'dropped' rows.")
        if self.message and reason == "duration":
            log.info(self.message)       # the end the user asked for: news, not a warning
        elif self.message and reason != "stopped":
            log.warning(self.message)

    def _wait_for_ingest(self, timeout: float) -> None:
        if self._final_stats is None:
            return
        # Every batch the agent handed to the connection; rows would undercount
        # the wait (drop-count and granularity rows are rows but not kept events).
        sent = self._final_stats.get("sent")
        kept = self._final_stats.get("kept", 0)
        deadline = time.monotonic() + timeout

        def landed() -> bool:
            return (self._batches >= sent) if sent is not None else (self._events >= kept)

        with self._landed:
            # Woken by each batch; the short slices notice a connection gone quiet.
            while not landed() and time.monotonic() < deadline:
                if not self._remote.alive and self._owner_queue_empty():
                    break
                self._landed.wait(min(0.05, max(0.0, deadline - time.monotonic())))

    def _owner_queue_empty(self) -> bool:
        return len(self._owner) == 0

    # -- ingest thread

    def _ingest_loop(self) -> None:
        while not self._done.is_set():
            try:
                message = self._owner.receive(timeout=0.2)
            except TimeoutError:
                continue
            except NodeDown:
                if self.state == "running":
                    self.state = "disconnected"
                    self.stopped_at = time.monotonic()
                    self.message = ("The connection to the node dropped; the agent removed its "
                                    "trace on the node. Events up to then are kept.")
                self._settle_details(0.0)
                return
            try:
                self._handle(message)
            except Exception:  # noqa: BLE001 - one bad batch must not end ingestion
                log.exception("could not ingest a message from the agent")

    def _handle(self, message: Any) -> None:
        if isinstance(message, tuple) and message and message[0] == A_BATCH:
            _, _tracer, _n, count, headers, payloads, defs, seen, dropped = message
            added = self._store.append_batch(self.source, binary_bytes(headers), binary_bytes(payloads),
                                             list(defs), seen, dropped)
            self._seen, self._dropped = seen, dropped
            with self._landed:
                self._events += added
                self._batches += 1
                self._landed.notify_all()
        elif isinstance(message, tuple) and message and message[0] == A_DETAILS:
            try:
                details = {str(k): v for k, v in message[2].items()}
                self._store.add_details(self.source, details["names"],
                                        read_relations(details["relations"]),
                                        details["traced_pids"])
                self._info.update(hooked=details["hooked"],
                                  hook_requests=read_pids(details["hook_requests"]))
            except Exception:
                self._store.details_lost(self.source)   # readers must not wait on a bad message
                raise
            finally:
                self._details.set()
        elif isinstance(message, tuple) and message and message[0] == A_STOPPED:
            _, _agent, reason, stats = message
            self._finish(str(reason), _stats(stats))
        elif (isinstance(message, tuple) and len(message) == 5 and message[0] == A_DOWN
              and message[1] == self._agent_ref and message[4] not in QUIET_ENDS):
            self._finish("agent_died", {"reason": message[4]})


def _stats(term: Any) -> dict[str, Any]:
    if isinstance(term, dict):
        return {str(k): (str(v) if isinstance(v, Atom) else v) for k, v in term.items()}
    return {}
