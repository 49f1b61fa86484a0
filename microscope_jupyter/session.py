"""The Session: one attached node, and everything a notebook asks of it.

    >>> import microscope_jupyter as mic
    >>> with mic.attach("demo@127.0.0.1") as s:
    ...     print(s.node_info()["otp_release"])
    ...     with s.trace():
    ...         ...                          # exercise the system
    ...     s.messages()
    25

Magics, widgets and MCP tools are thin layers over this class. The cookie
is used for the handshake and then dropped: a Session cannot leak what it
does not hold.
"""

from __future__ import annotations

import ssl
from typing import Any

import pandas as pd

from .agent.beam_file import AGENT_MODULE, ensure_agent, unload_agent
from .agent.controller import Recording
from .agent.flight import (FlightRecorder, flight_recorders, pull_flight_recorder, remove_recorder,
                           start_flight_recorder, with_recorder_options)
from .agent.inspect import module_source, module_versions, node_facts, process_details
from .agent.line_hooks import note_missing_line_hooks
from .agent.options import with_trace_options
from .agent.spec import TraceSpec
from .agent.tables import Columns
from .analysis.compare import modules_seen
from .analysis.facts import Facts
from .gitmeta import checkout_commit
from .live_port import NodePort
from .overview import read_snapshot
from .session_base import SessionBase
from .beam.node import LocalNode, RemoteNode
from .beam.terms import Atom
from .beam.ssh import SshTunnel
from .beam.tls import client_context
from .errors import MicroscopeError, TLSError, TraceError
from .render import format_mfa_term, format_name
from .store.event_store import EventStore

__all__ = ["Session", "attach", "demo"]

TREE_COLUMNS = ["pid", "name", "parent", "kind", "initial_call", "status", "message_queue_len",
                "memory", "application", "reductions"]
PROCESS_COLUMNS = ["pid", "name", "initial_call", "current_function", "status",
                   "message_queue_len", "memory", "reductions"]



class Session(SessionBase):
    """An attached BEAM node. Use ``attach()`` to make one.

    Everything that reads a recording (events, messages, states, query,
    time_travel, expect, findings, sql, save) comes from ``SessionBase``, over
    ``s.facts``, and works the same on a saved session loaded with ``mic.load``.
    """

    def __init__(self, local: LocalNode, remote: RemoteNode, store: EventStore | None = None):
        self._local = local
        self._remote = remote
        self.node = remote.name
        # A cluster's sessions share its store and its local node.
        self._shared = store is not None
        super().__init__(Facts(store if store is not None else EventStore(),
                               live=NodePort(remote), node=remote.name))
        self._node_info: dict[str, Any] | None = None
        self.mcp = None                    # serve_mcp(): the MCP server, while it runs
        self._agent_used = False
        self.recordings: list[Recording] = []
        self.demo: Any = None          # DemoControls when attached with mic.demo()
        self._owned_node: Any = None   # a node we booted and must stop on detach

    def __repr__(self) -> str:
        state = "attached" if self.attached else "detached"
        return f"<microscope Session {self.node} {state}>"

    # -- lifecycle

    @property
    def attached(self) -> bool:
        return self._remote.alive

    def detach(self) -> None:
        """Stop any trace, unload the agent, disconnect. Safe to call twice."""
        if self.mcp is not None:
            self.mcp.stop()
        if self._remote.alive:
            for recording in self.recordings:
                if recording.running:
                    try:
                        recording.stop()
                    except MicroscopeError:
                        pass
            if self.recordings or self._agent_used:
                unload_agent(self._remote, {m for r in self.recordings for m in r.spec.modules})
        if self._shared:
            self._remote.close()
        else:
            self._local.close()
        if self._owned_node is not None:
            self._owned_node.stop()

    def __enter__(self) -> "Session":
        return self

    def __exit__(self, *exc: object) -> None:
        self.detach()

    # -- raw access (for the layers above and for power users)

    def rpc(self, module: str, function: str, args: list[Any] | tuple = (),
            timeout: float | None = 30.0) -> Any:
        """``rpc:call`` on the node; atoms in ``args`` must be ``Atom`` values."""
        self._require_attached()
        return self._remote.rpc(module, function, args, timeout)

    def eval_erlang(self, source: str, timeout: float | None = 30.0, **bindings: Any) -> Any:
        """Evaluate Erlang expressions on the node: ``s.eval_erlang("X * 2.", X=21)``."""
        self._require_attached()
        return self._remote.eval_erlang(source, bindings, timeout)

    # -- views of the live node

    def _use_agent(self) -> None:
        """Process tables are read by the agent (compiled: cheap for the node at any
        size), loaded on first use and unloaded at detach."""
        self._require_attached()
        ensure_agent(self._remote)
        self._agent_used = True

    def processes(self) -> pd.DataFrame:
        """One row per live process: pid, name, initial_call, current_function,
        status, message_queue_len, memory (bytes) and reductions."""
        self._use_agent()
        table = Columns.read(self._remote.rpc(AGENT_MODULE, "process_table", [], 60))
        frame = pd.DataFrame({
            "pid": table.texts("pid"),
            "name": table.terms("name", self._name_text),
            "initial_call": table.terms("initial_call", self._mfa_text),
            "current_function": table.terms("current_function", self._mfa_text),
            "status": table.terms("status", str),
            "message_queue_len": table.ints("message_queue_len"),
            "memory": table.ints("memory"),
            "reductions": table.ints("reductions"),
        }, columns=PROCESS_COLUMNS)
        ours = frame[["initial_call", "current_function"]].apply(   # the agent's: no app's
            lambda c: c.str.contains("microscope_agent", na=False)).any(axis=1)
        return frame[~ours].reset_index(drop=True)

    def _mfa_text(self, mfa: Any) -> str | None:
        return format_mfa_term(mfa, self.syntax)

    def _name_text(self, name: Any) -> str | None:
        return format_name(name, self.syntax) if isinstance(name, Atom) else None

    def versions(self) -> pd.DataFrame:
        """Each module the recording ran (its GenServers, its call-traced modules):
        md5, application and its version, source path, and the git commit of
        the checkout the source is in. Asked of the node while attached (code
        can be reloaded); the last answer once detached."""
        if self.attached and len(self.store):
            found = module_versions(self._remote, list(modules_seen(self.facts)))
            self._versions = [{**row, "module": format_name(row["module"], self.syntax),
                               "commit": checkout_commit(row["source"])} for row in found]
        return super().versions()

    def serve_mcp(self, port: int = 0, *, allow_trace: Any = None, cap: int = 8_000,
                  save_dir: Any = None, allow_save: bool = False):
        """Serve this session to AI assistants over MCP (streamable HTTP on
        127.0.0.1, behind a bearer token in ``s.mcp.token``, never printed). What an assistant records
        lands in this session. ``allow_trace`` pre-approves traces within
        ceilings (a ``Ceilings``, or a dict of max_events, max_rate,
        duration_s, payload_limit); otherwise each proposal waits for
        ``%beam_mcp approve ID``. ``save_dir``: the folder the assistant's saves go
        into (each a new folder in it, approved like a trace, or ahead of time with
        ``allow_save``); without it the save tool is off. Needs
        ``pip install 'microscope-jupyter[mcp]'``."""
        try:
            from .assistant import Assistant, Ceilings, HttpServer
        except ImportError as exc:
            raise MicroscopeError(f"serving MCP needs the mcp package ({exc.name}): "
                                  "pip install 'microscope-jupyter[mcp]'") from None
        if self.mcp is not None and self.mcp.running:
            self.mcp.stop()
        ceilings = Ceilings(**allow_trace) if isinstance(allow_trace, dict) else allow_trace
        self.mcp = HttpServer(Assistant(self, ceilings=ceilings, cap=cap, save_dir=save_dir,
                                        allow_save=allow_save), port)
        # The token is never printed: a kernel forwards even its own stderr into the
        # cell's output, and an executed notebook is saved and shared.
        print(f"MCP server for {self.node}: {self.mcp.url}\n"
              "Give your client the header 'Authorization: Bearer <s.mcp.token>' (the token "
              "is not shown here, so the notebook never saves it). Stop it with %beam_mcp stop.")
        return self.mcp

    def investigate(self, question: str, *, budget: Any = None, approve: Any = None,
                    reproduce: Any = None) -> Any:
        """Follow ``question`` to a confirmed cause: rank hypotheses on what is
        recorded (proposing a default trace first when nothing is),
        and propose, for the best open one, the bounded trace that decides it.
        Each runs only when approved: ``approve`` ceilings (a dict of max_events,
        max_rate, duration_s, payload_limit: pre-approved within them) or a
        callable given the trace's description; by default it
        waits for ``inv.approve()`` / ``inv.deny()`` (buttons in a notebook).
        ``reproduce`` is called as each trace starts (fire the incident again);
        ``budget`` a dict of traces (3), seconds (30) and events (1,000,000).
        Returns the ``Investigation``: ``.answer``, ``.path``, ``.hypotheses``."""
        from .investigation import Investigation

        return Investigation(self, question, budget=budget, approve=approve,
                             reproduce=reproduce).run()

    def supervision_tree(self) -> pd.DataFrame:
        """The live node's process tree: one row per process with its parent.

        Columns: pid, name, parent, kind (supervisor/worker), initial_call,
        status, message_queue_len, memory, application. Roots have no parent.
        """
        self._use_agent()
        table = Columns.read(self._remote.rpc(AGENT_MODULE, "process_tree", [], 60))
        # Supervisors are proc_lib processes whose initial call is supervisor's.
        kind = table.terms("initial_call", lambda mfa: "supervisor" if isinstance(mfa, tuple)
                           and mfa and mfa[0] == Atom("supervisor") else "worker")
        return pd.DataFrame({
            "pid": table.texts("pid"),
            "name": table.terms("name", self._name_text),
            "parent": table.texts("parent"),
            "kind": kind,
            "initial_call": table.terms("initial_call", self._mfa_text),
            "status": table.terms("status", str),
            "message_queue_len": table.ints("message_queue_len"),
            "memory": table.ints("memory"),
            "application": table.terms("application",
                                       lambda a: None if a == Atom("undefined") else str(a)),
            "reductions": table.ints("reductions"),
        }, columns=TREE_COLUMNS)

    def overview(self, window: float = 0.5, top: int = 10) -> Any:
        """The node at a glance (``SessionBase.overview``), read in one remote
        evaluation: scheduler utilisation measured over ``window`` seconds."""
        self._require_attached()
        from .widgets.overview import SystemOverview

        return SystemOverview(self, read=lambda: read_snapshot(self, window, top), top=top)

    def _metadata(self) -> dict[str, Any]:
        meta = super()._metadata()
        info = self._node_info
        if info is None and self.attached:
            info = self.node_info()
        info = info or {}
        meta.update({
            "node": self.node,
            "otp_release": info.get("otp_release"),
            "erts_version": info.get("erts_version"),
            "elixir_version": info.get("elixir_version"),
            "applications": info.get("applications", {}),
            "traces": [{"source": r.source, "spec": r.spec.describe(), "status": {
                k: v for k, v in r.status().items() if k != "message"}, "message": r.message}
                for r in self.recordings],
        })
        return meta

    def node_info(self) -> dict[str, Any]:
        """OTP release, ERTS and Elixir versions, schedulers, process count, uptime."""
        self._require_attached()
        self._node_info = {"node": self.node, **node_facts(self._remote)}
        return dict(self._node_info)

    # -- tracing

    @with_trace_options
    def trace(self, *procs: Any, modules: Any = (), duration: Any = None,
              system_monitor: Any = None, **options: Any) -> Recording:
        """Start recording; returns a Recording (a context manager; ``.stop()``).

        With no arguments, records every application process (kernel and
        stdlib internals left out): messages, lifecycle (spawn, exit, link,
        register, monitor; the links and monitors held at the start too), and
        GenServer state before/after each callback. ``procs`` narrows it to
        pids, names or supervisors (their whole subtree); children are
        followed as they spawn. ``modules`` adds call/return/exception tracing for
        ``"MyApp.Worker"`` or ``"MyApp.Worker.handle_call/3"``. ``duration``
        (none; ``5``, ``"5s"``, ``"500ms"``) stops it by itself.

        Limits are always on. Options, with their defaults:

        {options}

        ``system_monitor`` records long_gc / long_schedule / large_heap events:
        None (default) only if the node's single system monitor is free,
        True to take it (the previous one is restored at the end), False not
        at all, or a dict of thresholds (``long_gc_ms``, ``long_schedule_ms``,
        ``large_heap_words``).
        """
        self._require_attached()
        if isinstance(modules, str):
            modules = [modules]
        spec = TraceSpec.build(procs, modules, duration=duration, system_monitor=system_monitor,
                               **options)
        return start_recording(self, spec)

    @with_recorder_options     # its keywords, defaults and docs: start_flight_recorder's
    def flight_recorder(self, *procs: Any, **options: Any) -> FlightRecorder:
        self._require_attached()
        return start_flight_recorder(self._remote, procs, **options)

    def flight_recorders(self) -> pd.DataFrame:
        """Every flight recorder on the node, whichever session started it."""
        self._require_attached()
        return flight_recorders(self._remote)

    def pull_flight_recorder(self, recorder: Any = None, remove: bool = False) -> Recording:
        """What a flight recorder holds (the only one, or ``recorder``: an id from
        ``flight_recorders()``), as a recording here; ``rec.flight`` lists the
        frozen copies and the gaps. It keeps recording unless ``remove``."""
        self._require_attached()
        recording = pull_flight_recorder(self._remote, self._local, self.store, recorder,
                                         f"{self.node}#{len(self.recordings) + 1}")
        self.recordings.append(recording)
        if remove:
            remove_recorder(self._remote, recording.pulled_from)
        return recording

    def process(self, proc: Any, timeout: float = 1.0) -> dict[str, Any]:
        """One live process (a pid text or a name): its ``state`` (GenServers and
        other sys processes that answer within ``timeout``), ``links``,
        ``monitors``, ``monitored_by`` and counters. QueryError if there is none."""
        self._require_attached()
        self._use_agent()
        return process_details(self._remote, proc, int(timeout * 1000))

    def source(self, module: str) -> dict[str, Any]:
        """Where ``module``'s source is on the node (``source``), the file (``text``,
        when the node can read it) and its functions' first lines (debug info)."""
        self._require_attached()
        self._use_agent()
        return module_source(self._remote, module)

    def _require_attached(self) -> None:
        if not self._remote.alive:
            raise self._remote.down_error()



def start_recording(session: Session, spec: TraceSpec, source: str | None = None,
                    clock_offset_ns: int = 0) -> Recording:
    """The one way a trace starts, guards included: ``Session.trace``, and a
    cluster's trace on each of its nodes."""
    session._require_attached()
    running = [r for r in session.recordings if r.running]
    if running:
        raise TraceError(f"a trace is already running in this session ({running[0].source}); "
                         "stop it with rec.stop() first")
    source = source or f"{session.node}#{len(session.recordings) + 1}"
    if session._node_info is None:
        session.node_info()  # versions for saved sessions, taken while the node is here
    # the tree now: its processes' parents (a first trace's, and a later one's new ones)
    session.facts.note_tree(session.supervision_tree())
    recording = Recording.start(session._remote, session._local, session.store, spec, source,
                                clock_offset_ns=clock_offset_ns)
    note_missing_line_hooks(session._remote, recording)
    session.recordings.append(recording)
    return recording

def demo(fixed: bool = False) -> Session:
    """Boot the bundled demo app (compiling it if needed) and attach to it.

    ``s.demo.start_updates(50)`` starts the scenario; ``s.detach()`` also
    stops the demo node. ``fixed=True`` boots the build with both bugs fixed.
    """
    from .demo_app import DemoControls, boot_demo_node

    node = boot_demo_node(fixed=fixed)
    try:
        session = attach(node.name, cookie=node.cookie)
    except BaseException:
        node.stop()
        raise
    session._owned_node = node
    session.demo = DemoControls(session)
    session.demo.wait_for_app()
    return session


def attach(node: str, cookie: str | None = None, *, net_ticktime: float | None = None,
           timeout: float = 10.0, epmd_port: int | None = None, tls: Any = None,
           ssl_context: ssl.SSLContext | None = None, ssh: str | None = None) -> Session:
    """Attach to a running node as a hidden node and return a Session.

    ``cookie`` defaults to ``$MICROSCOPE_COOKIE``, then ``~/.erlang.cookie``.
    ``net_ticktime`` is read from the node unless given: a node silent for
    that long counts as down, and we tick four times as often. ``tls``, for
    a node on TLS distribution: ``{"cafile": ..., "certfile": ...,
    "keyfile": ...}`` (the node's certificate is verified by default), or
    an ``ssl.SSLContext``. ``ssh``, for a node reachable only from an SSH
    host: ``"user@bastion"`` (or ``"user@bastion:2222"``, or a ``Host`` of
    ``~/.ssh/config``); EPMD and the distribution connection go through one
    SSH connection, which closes on detach. Needs ``pip install
    'microscope-jupyter[ssh]'``.
    """
    context = client_context(tls if tls is not None else ssl_context)
    if ssh is not None and context is not None:
        raise TLSError("TLS distribution through ssh= is not supported: attach to a TLS node "
                       "from a machine that reaches it, or leave out one of tls= and ssh=")
    tunnel = SshTunnel(ssh, timeout) if ssh is not None else None
    local = LocalNode()
    try:
        remote = local.connect(node, cookie, net_ticktime=net_ticktime, timeout=timeout,
                               epmd_port=epmd_port, ssl_context=context, tunnel=tunnel)
    except BaseException:
        local.close()
        if tunnel is not None:
            tunnel.close()
        raise
    return Session(local, remote)
