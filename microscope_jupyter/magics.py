"""IPython magics: thin routers over the Session API.

    %load_ext microscope
    s = %beam_attach --demo                      # or: %beam_attach demo@host --cookie-file F
    %trace start Demo.WorkerB --for 5s           # line form: start / stop / status
    %%trace
    Demo.start_updates(20); Process.sleep(500)   # cell form: Elixir run under trace,
                                                 # then its sequence diagram
    %beam_processes   %beam_tree   %beam_overview   %beam_sequence   %beam_timetravel
    %beam_detach
    %beam_explain Why isn't WorkerB receiving all updates from WorkerA?
    %beam_investigate Why is the balance lower than the deposits?   # approve deeper traces

Mistakes raise ``UsageError``, so IPython shows one line and no traceback,
with a "did you mean" for near misses. There is deliberately no
``--cookie VALUE`` option: a cookie typed into a cell would be saved in the
notebook. Use ``--cookie-file``, ``$MICROSCOPE_COOKIE`` or ``~/.erlang.cookie``.
"""

from __future__ import annotations

import time
from typing import Any

import pandas as pd
from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, line_magic, magics_class

from .agent.options import DURATION, TRACE_FLAGS, flag_help, parse_duration
from .beam.address import read_cookie_file
from .magic_words import options as _options, run as _run, split as _split, suggest as _suggest
from .cluster import Cluster, attach_cluster
from .ipython_input import install, uninstall
from .session import Session, attach, demo
from .widgets.status import StatusLine

__all__ = ["MicroscopeMagics", "load_ipython_extension", "unload_ipython_extension",
           "current_session"]

_state: dict[str, Any] = {"session": None, "recording": None}


def current_session() -> Session:
    session = _state["session"]
    if session is None or not session.attached:
        raise UsageError("there is no attached node. Attach with %beam_attach NODE@HOST "
                         "(or %beam_attach --demo) and try again")
    return session


ATTACH_USAGE = ("%beam_attach NODE@HOST [--cluster] [--cookie-file PATH] [--net-ticktime SECONDS] "
                "[--tls-ca PATH [--tls-cert PATH --tls-key PATH]] [--ssh USER@HOST] | --demo")
# The %trace flags are agent/options.py's table (TRACE_FLAGS), so each has one
# default; --modules and --erlang are the magic's own.
TRACE_OPTIONS = {"modules": str, "erlang": None, **{
    flag[2:]: None if o.kind is bool else str if o is DURATION else o.kind
    for flag, o in TRACE_FLAGS.items()}}
TRACE_USAGE = ("%trace start [PROC ...] [--modules M,...] " + " ".join(
    f"[{flag}]" if o.kind is bool else f"[{flag} {'5s' if o is DURATION else 'N'}]"
    for flag, o in TRACE_FLAGS.items()) + " | %trace stop | %trace status")
EVAL_GRACE_S, EVAL_TIMEOUT_S = 5.0, 30.0   # a %%trace cell's code runs --for + grace, else 30 s


def _trace_kwargs(options: dict) -> dict:
    """Session.trace's keywords for the flags given: a bool flag flips its default."""
    kwargs: dict[str, Any] = {}
    if "modules" in options:
        kwargs["modules"] = [m for m in options["modules"].split(",") if m]
    for name, value in options.items():
        option = TRACE_FLAGS.get(f"--{name}")
        if option is not None:
            kwargs[option.keyword] = not option.default if option.kind is bool else value
    return kwargs


@magics_class
class MicroscopeMagics(Magics):
    @line_magic
    def beam_attach(self, line: str) -> Session:
        """Attach to a running node as a hidden node; the session becomes `s`'s value.

        %beam_attach NODE@HOST [--cluster] [--cookie-file PATH] [--net-ticktime SECONDS]
                     [--tls-ca PATH [--tls-cert PATH --tls-key PATH]] [--ssh USER@HOST]
        %beam_attach --demo                  boot the bundled demo app and attach to it

        Options:
          --cluster              every node of NODE's cluster (mic.attach_cluster): %trace
                                 records them all, one agent per node
          --cookie-file PATH     read the cookie from PATH (else $MICROSCOPE_COOKIE, then
                                 ~/.erlang.cookie); a cookie is never typed into a cell
          --net-ticktime SECONDS the node's net_ticktime, when it is not the default 60
          --tls-ca PATH          the node runs TLS distribution (-proto_dist inet_tls): the
                                 CA that signed its certificate (which is verified)
          --tls-cert PATH, --tls-key PATH
                                 our client certificate and key, for a node that asks for one
          --ssh USER@HOST        reach the node through one SSH connection to HOST (as
                                 ~/.ssh/config, keys and ssh-agent say); closed on detach
          --demo                 compile if needed and boot examples/apps/demo
        """
        words = _split(line)
        if "--cookie" in words:
            raise UsageError("a cookie typed into a cell is saved with the notebook; use "
                             "--cookie-file PATH, $MICROSCOPE_COOKIE or ~/.erlang.cookie")
        positional, options = _options(words, {"cookie-file": str, "net-ticktime": float,
                                               "tls-ca": str, "tls-cert": str, "tls-key": str,
                                               "demo": None, "cluster": None, "ssh": str},
                                       ATTACH_USAGE)
        if options.get("demo"):
            if positional:
                raise UsageError("--demo boots its own node; leave out the node name")
            session = _run(demo)
        else:
            if not positional:
                raise UsageError("name the node to attach to, e.g. %beam_attach demo@127.0.0.1")
            if len(positional) > 1:
                raise UsageError(f"%beam_attach takes one node name, got {positional[0]!r} and "
                                 f"{positional[1]!r}")
            cookie = None
            if "cookie-file" in options:
                cookie = _run(lambda: read_cookie_file(options["cookie-file"]))
            tls = {key: options[f"tls-{flag}"] for key, flag in
                   (("cafile", "ca"), ("certfile", "cert"), ("keyfile", "key"))
                   if f"tls-{flag}" in options} or None
            connect = attach_cluster if options.get("cluster") else attach
            if options.get("cluster") and "ssh" in options:
                raise UsageError("--cluster does not go through --ssh yet: attach to each node")
            via = {"ssh": options["ssh"]} if "ssh" in options else {}
            try:
                session = _run(lambda: connect(positional[0], cookie, tls=tls,
                                               net_ticktime=options.get("net-ticktime"), **via))
            except UsageError as exc:
                # The library's hint names its keyword; here it is the magic's option.
                raise UsageError(str(exc).replace("pass cookie=..., set MICROSCOPE_COOKIE",
                                                  "use --cookie-file PATH, set $MICROSCOPE_COOKIE")
                                 .replace("cookie=..., MICROSCOPE_COOKIE",
                                          "--cookie-file PATH, $MICROSCOPE_COOKIE")
                                 .replace("tls={'cafile': ...}", "--tls-ca PATH")
                                 .replace("tls={'certfile': ..., 'keyfile': ...}",
                                          "--tls-cert PATH --tls-key PATH")
                                 .replace("needs tls=...", "needs --tls-ca PATH")) from None
        previous = _state["session"]
        if previous is not None:
            previous.detach()
        _state["session"] = session
        _state["recording"] = None
        return session

    @line_magic
    def beam_detach(self, line: str) -> None:
        """%beam_detach: stop tracing, unload the agent, disconnect."""
        session = _state["session"]
        if session is None:
            raise UsageError("there is no attached node to detach from")
        session.detach()
        _state["session"] = None
        print(f"Detached from {session.node}.")

    @line_magic
    def beam_processes(self, line: str):
        """%beam_processes: the attached node's processes as a DataFrame (the mailbox,
        memory and reductions columns first, where a narrow notebook shows them)."""
        table = _run(lambda: current_session().processes())
        first = ["pid", "name", "message_queue_len", "memory", "reductions", "status"]
        shown = table[first + [c for c in table.columns if c not in first]].copy()
        shown["name"] = shown["name"].fillna("")     # an unnamed process: blank, not NaN
        return shown

    @line_magic
    def beam_tree(self, line: str):
        """%beam_tree: the supervision tree widget (live)."""
        from .widgets import SupervisionTree

        return _run(lambda: SupervisionTree(current_session()))

    @line_magic
    def beam_overview(self, line: str):
        """%beam_overview [--window SECONDS] [--top N]: the node at a glance (s.overview())."""
        usage = "%beam_overview [--window SECONDS] [--top N]"
        positional, options = _options(_split(line), {"window": float, "top": int}, usage)
        if positional:
            raise UsageError(f"%beam_overview takes no process or node, got {positional[0]!r}. "
                             f"Usage: {usage}")
        return _run(lambda: current_session().overview(**options))

    @line_magic
    def beam_sequence(self, line: str):
        """%beam_sequence [PROC ...] [--limit N]: sequence diagram of the recording."""
        from .widgets import SequenceDiagram

        procs, options = _options(_split(line), {"limit": int}, "%beam_sequence [PROC ...] [--limit N]")
        session = self._recorded()
        return _run(lambda: SequenceDiagram(session, procs=procs or None,
                                            limit=options.get("limit")))

    @line_magic
    def beam_timetravel(self, line: str):
        """%beam_timetravel [--at SEQ]: the time-travel slider over the recording."""
        from .widgets import TimeTravel

        _, options = _options(_split(line), {"at": int}, "%beam_timetravel [--at SEQ]")
        session = self._recorded()
        at, last = options.get("at", 0), len(session.store) - 1
        if not 0 <= at <= last:
            raise UsageError(f"--at {at} is outside the recording: its seqs run 0-{last}")
        return _run(lambda: TimeTravel(session, cursor=at))

    @line_magic
    def beam_explain(self, line: str):
        """%beam_explain [QUESTION]: why the recording went as it did, in one paragraph."""
        question = line.strip().strip("\"'") or None
        session = self._recorded()
        return _run(lambda: session.explain(question))

    @line_magic
    def beam_investigate(self, line: str):
        """%beam_investigate QUESTION [--traces N] [--seconds S]: follow QUESTION to a
        confirmed cause; each deeper trace it proposes waits for your Approve."""
        usage = "%beam_investigate QUESTION [--traces N] [--seconds S]"
        budget, words = {}, []
        it = iter(line.split())       # the question is prose: apostrophes, no quoting
        for word in it:
            if word in ("--traces", "--seconds"):
                value = next(it, "")
                try:
                    budget[word[2:]] = int(value) if word == "--traces" else float(value)
                except ValueError:
                    raise UsageError(f"{word} needs a number, got {value!r}. Usage: {usage}") \
                        from None
            elif word.startswith("--"):
                raise UsageError(f"unknown option {word}."
                                 f"{_suggest(word, ['--traces', '--seconds'])} Usage: {usage}")
            else:
                words.append(word)
        question = " ".join(words).strip("\"'")
        if not question:
            raise UsageError(f"ask a question, like: %beam_investigate Why is the count low? "
                             f"Usage: {usage}")
        session = current_session()
        return _run(lambda: session.investigate(question, budget=budget or None))

    @line_magic
    def beam_exunit(self, line: str):
        """%beam_exunit PROC [--mode reproduce|regression] [--out FILE] [--between A:B]
        [--module MOD]: an ExUnit test that replays PROC's recorded messages."""
        usage = ("%beam_exunit PROC [--mode reproduce|regression] [--out FILE] "
                 "[--between FIRST:LAST] [--module MyApp.Server]")
        positional, options = _options(_split(line), {"mode": str, "out": str, "between": str,
                                                      "module": str}, usage)
        if len(positional) != 1:
            raise UsageError(f"name one process. Usage: {usage}")
        between = None
        if "between" in options:
            first, _, last = options["between"].partition(":")
            if not (first.isdigit() and last.isdigit()):
                raise UsageError(f"--between takes two seqs, FIRST:LAST, not {options['between']!r}")
            between = (int(first), int(last))
        session = self._recorded()
        test = _run(lambda: session.exunit(positional[0], between=between,
                                           mode=options.get("mode", "reproduce"),
                                           module=options.get("module")))
        if "out" in options:
            print(f"wrote {test.write(options['out'])}")
        return test

    @line_magic
    def beam_mcp(self, line: str):
        """%beam_mcp start [--port P] [--allow-trace] [--save-dir DIR] | stop | status | approve ID
        | deny ID: serve this session to AI assistants over MCP, decide on their proposals."""
        usage = self.beam_mcp.__doc__.split(":", 1)[0].replace("\n        ", " ")
        words = _split(line)
        if not words:
            raise UsageError(f"say what to do. Usage: {usage}")
        command, rest = words[0], words[1:]
        session = current_session()
        server = getattr(session, "mcp", None)
        if command == "start":
            _, options = _options(rest, {"port": int, "allow-trace": None, "save-dir": str}, usage)
            ceilings = {} if options.get("allow-trace") else None
            return _run(lambda: session.serve_mcp(options.get("port", 0), allow_trace=ceilings,
                                                  save_dir=options.get("save-dir")))
        if server is None or not server.running:
            raise UsageError("no MCP server is running; start one with %beam_mcp start")
        if command == "stop":
            server.stop()
            print("MCP server stopped")
            return None
        if command == "status":
            print(f"{server!r}; {len(server.assistant.pending())} proposal(s) pending")
            return server.approvals()
        if command in ("approve", "deny"):
            if len(rest) != 1 or not rest[0].isdigit():
                raise UsageError(f"name the proposal: %beam_mcp {command} ID")
            proposal = _run(lambda: server.assistant.decide(int(rest[0]), command == "approve",
                                                            "notebook"))
            print(f"proposal {proposal.id}: {proposal.status}. {proposal.message}")
            return None
        raise UsageError(f"unknown %beam_mcp command {command!r}.{_suggest(command, ['start', 'stop', 'status', 'approve', 'deny'])} Usage: {usage}")

    @line_cell_magic
    def trace(self, line: str, cell: str | None = None):
        """Record what the node does.

        %trace start [PROC ...] [options]   record PROCs (registered names, module aliases,
                                            pids, or supervisors with their whole subtree);
                                            none: every process
        %trace stop                          stop; every event kept is then in s.events
        %trace status                        events, rate, drops and state hooks so far
        %%trace [options]                    run the cell's Elixir (--erlang: Erlang) on the node
                                             under trace (killed past --for + 5 s); its diagram

        Options:
          --modules M,...   also record calls of these ("Demo.WorkerB.handle_info/2",
                            "Demo.WorkerB.handle_info", "Demo.WorkerB")
          --erlang          %%trace only: the cell is Erlang
          {flags}
        """
        if cell is not None:
            return self._trace_cell(line, cell)
        words = _split(line)
        commands = {"start": self._trace_start, "stop": self._trace_stop,
                    "status": self._trace_status}
        if not words:
            raise UsageError(f"say what to do. Usage: {TRACE_USAGE}")
        command = words[0]
        if command not in commands:
            if command.startswith("-") or command[:1].isupper() or command.startswith("<"):
                return self._trace_start(words)   # `%trace Demo.WorkerB --for 5s`
            raise UsageError(f"unknown %trace command {command!r}.{_suggest(command, list(commands))}"
                             f" Usage: {TRACE_USAGE}")
        return commands[command](words[1:])

    def _trace_start(self, words: list[str]):
        session = current_session()
        if _state["recording"] is not None and _state["recording"].running:
            raise UsageError("a trace is already running; %trace stop it first")
        procs, options = _options(words, TRACE_OPTIONS, TRACE_USAGE)
        recording = _run(lambda: session.trace(*procs, **_trace_kwargs(options)))
        _state["recording"] = recording
        StatusLine(recording)

    def _trace_stop(self, words: list[str]):
        recording = _state["recording"]
        if recording is None:
            raise UsageError("no trace is running; start one with %trace start")
        status = _run(recording.stop)
        print(f"Stopped: {status['events']:,} events, {status['dropped']:,} dropped."
              + (f" {status['message']}" if status.get("message") else ""))

    def _trace_status(self, words: list[str]):
        recording = _state["recording"]
        if recording is None:
            return print("no trace: start one with %trace start (or %%trace)")   # not an error
        status = recording.status()
        said = [status.pop("message"), *status.pop("notes", ())]   # sentences: printed
        table = pd.DataFrame({"value": [v if isinstance(v, (int, float, str)) else str(v)
                                        for v in status.values()]}, index=list(status))
        table.attrs["status"] = status          # the dict itself, for code
        for sentence in said:
            if sentence:
                print(sentence)
        return table

    def _trace_cell(self, line: str, cell: str):
        from .widgets import SequenceDiagram

        session = current_session()
        if isinstance(session, Cluster):
            raise UsageError("%%trace runs the cell on one node; on a cluster use %trace start, "
                             "or %beam_attach that node")
        procs, options = _options(_split(line), TRACE_OPTIONS,
                                  "%%trace [PROC ...] [--for 1s] [--erlang] [--modules M,...]")
        settle, bound = 0.2, EVAL_TIMEOUT_S
        kwargs = _trace_kwargs(options)
        if DURATION.keyword in kwargs:  # --for: keep recording that long after the code returns
            settle = _run(lambda: parse_duration(kwargs.pop(DURATION.keyword)))
            bound = settle + EVAL_GRACE_S    # and the code may run that long, plus a grace
        recording = _run(lambda: session.trace(*procs, **kwargs))
        first = recording.first_seq
        try:
            _run(lambda: recording.eval_traced(cell, "erlang" if options.get("erlang") else
                                               "elixir", timeout=bound))
            time.sleep(settle)
        finally:
            _run(recording.stop)
        return SequenceDiagram(session, since=first)

    def _recorded(self):
        session = _state["session"]
        if session is None:
            raise UsageError("there is no session. Attach with %beam_attach and record with "
                             "%trace, or load one with mic.load(path)")
        if len(session.store) == 0:
            raise UsageError("nothing is recorded yet; record with %trace start or %%trace")
        return session


# %trace? lists every flag the options table generates, each with its default.
MicroscopeMagics.trace.__doc__ = MicroscopeMagics.trace.__doc__.replace("{flags}", flag_help(10))


def load_ipython_extension(ipython) -> None:
    install(ipython, MicroscopeMagics)    # and %beam_explain's questions keep their `?`


def unload_ipython_extension(ipython) -> None:
    session = _state["session"]
    if session is not None:
        session.detach()
    _state["session"] = None
    _state["recording"] = None
    uninstall(ipython, MicroscopeMagics)
