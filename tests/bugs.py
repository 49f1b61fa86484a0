"""The bug corpus: small, realistic OTP apps with one bug each, and one function
that asks the tool what went wrong and holds its answer to the manifest.

    from bugs import BUGS, BY_NAME, run_bug
    result = run_bug(BY_NAME["stale_pid"], "otp25")
    result.verdict          # "named", "symptom" or "missed"

Each app is one Erlang module in tests/erlang/bugs/ (``bug_<name>.erl``:
``start/0``, ``stop/0``, ``procs/0`` and, for a one-off incident,
``trigger/0``), written the way the bug appears in real code, not shaped to
any detector. tests/erlang/bugs/MANIFEST.toml says, for each, where the root
cause lives (``process``), the mechanism in a sentence, the ``words`` any
correct diagnosis contains (regexes, all of them), the ``symptom`` words
(any), the ``question`` a user would ask, and the extra ``trace`` options a
user would need where the default trace cannot see the cause.

``run_bug`` starts a fresh node, starts the app, lets it warm up, records it
with the default trace (plus the manifest's ``trace``), fires ``trigger/0``
if the app has one, stops, and asks ``s.explain(question)``. The answer
(its paragraph and its causes) is **named** when it names the process and
matches every word, **symptom** when it matches a symptom word (or only some
of the cause's words), else **missed**. Used by bench/diagnosis.py and
tests/integration/test_diagnosis.py.
"""

from __future__ import annotations

import re
import tempfile
import time
import tomllib
import traceback
from dataclasses import dataclass, field
from pathlib import Path

from idioms import Stages, _tool_log, _warm_up, node_problems
from nodes import ERLANG_DIR, compile_erlang, load_module, start_node, wait_until

BUG_DIR = ERLANG_DIR / "bugs"
MANIFEST = BUG_DIR / "MANIFEST.toml"
RUNTIMES = ("otp25", "otp28")
VERDICTS = ("named", "symptom", "missed")


@dataclass(frozen=True)
class Bug:
    name: str
    title: str
    process: str                 # where the root cause lives: a registered name
    mechanism: str
    words: tuple[str, ...]       # all must match a diagnosis that names the cause
    symptom: tuple[str, ...]     # any: the answer saw at least the symptom
    question: str
    trace: dict = field(default_factory=dict, hash=False)
    runtimes: tuple[str, ...] = RUNTIMES

    @property
    def module(self) -> str:
        return f"bug_{self.name}"

    @property
    def source(self) -> Path:
        return BUG_DIR / f"{self.module}.erl"


def load_manifest(path: Path = MANIFEST) -> list[Bug]:
    table = tomllib.loads(path.read_text())
    return [Bug(name, entry["title"], entry["process"], entry["mechanism"],
                tuple(entry["words"]), tuple(entry.get("symptom", ())), entry["question"],
                dict(entry.get("trace", {})), tuple(entry.get("runtimes", RUNTIMES)))
            for name, entry in table.items()]


BUGS = load_manifest() if MANIFEST.exists() else []
BY_NAME = {b.name: b for b in BUGS}


@dataclass
class BugResult:
    bug: str
    runtime: str
    verdict: str = "missed"
    answer: str = ""                 # the explanation's paragraph and its causes
    question: str = ""
    matched: list[str] = field(default_factory=list)   # the words found
    missing: list[str] = field(default_factory=list)   # the words not found
    names_process: bool = False
    causes: list[dict] = field(default_factory=list)
    findings: list[str] = field(default_factory=list)  # kind (severity) per warning/error row
    events: int = 0
    dropped: int | None = None
    node_log: list[str] = field(default_factory=list)  # the node's own crash/error reports
    errors: list[dict] = field(default_factory=list)
    tool_warnings: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    traces: int | None = None        # investigated: the traces the investigation ran
    path: list[str] = field(default_factory=list)       # investigated: each step, one line


def judge(bug: Bug, answer: str) -> tuple[str, list[str], list[str], bool]:
    """(verdict, words matched, words missing, names the process) of an answer.
    The words are looked for with the app's own names taken out: a process
    called ``bug_unmatched_messages_aggregator`` says nothing about why."""
    names = _names(bug.process, answer)
    text = re.sub(r"(?<![\w])(Elixir\.)?:?bug_\w+", "", answer)
    matched = [w for w in bug.words if re.search(w, text, re.IGNORECASE)]
    missing = [w for w in bug.words if w not in matched]
    if names and not missing:
        return "named", matched, missing, names
    if matched or any(re.search(w, text, re.IGNORECASE) for w in bug.symptom):
        return "symptom", matched, missing, names
    return "missed", matched, missing, names


def _names(process: str, answer: str) -> bool:
    """The answer names ``process``: as the atom (``:bug_x`` or ``bug_x``) or
    as an Elixir alias would print it."""
    return re.search(rf"(?<![\w]){re.escape(process.lstrip(':'))}(?!\w)", answer) is not None


def answer_text(explanation) -> str:
    """What a user reads: the paragraph, then each cause's summary."""
    lines = [explanation.text]
    lines += [f"{c.rank}. {c.kind}: {c.summary}"
              for c in explanation.causes.itertuples(index=False)]
    return "\n".join(lines)


_BUILT: dict[Path, Path] = {}


def build(bug: Bug, out_dir: Path) -> Path:
    """The app compiled once per run, again if its build folder has gone (a run's
    temporary folder is removed when it ends)."""
    built = _BUILT.get(bug.source)
    if built is None or not built.exists():
        built = _BUILT[bug.source] = compile_erlang(bug.source, out_dir)
    return built


def run_bug(bug: Bug | str, runtime: str, seconds: float = 4.0, *,
            build_dir: Path | None = None, log_dir: Path | None = None,
            save_to: Path | None = None, investigate: dict | None = None) -> BugResult:
    """Run one corpus app on a fresh node of ``runtime`` and hold the tool's
    explanation to the manifest. Nothing here raises on a tool error: it is
    a result (``errors``), and the verdict is then missed. ``save_to``: keep
    the recording there (``s.save``), with the node's log beside it as
    node.log, to work on offline with ``explain_saved``. ``investigate``: the
    default trace alone (the manifest's ``trace`` left out), then
    ``s.investigate`` with these ceilings pre-approved, as a person would
    approve them; ``traces`` on the result counts the traces it ran."""
    bug = BY_NAME[bug] if isinstance(bug, str) else bug
    result = BugResult(bug.name, runtime, question=bug.question)
    with _tool_log(result.tool_warnings), tempfile.TemporaryDirectory(prefix="bug-") as tmp:
        _run(bug, runtime, seconds, result, Path(build_dir or tmp), Path(log_dir or tmp),
             save_to, investigate)
    return result


def explain_saved(bug: Bug | str, path: Path, runtime: str = "saved") -> BugResult:
    """The verdict on a recording ``run_bug(save_to=...)`` kept: no node needed."""
    import microscope_jupyter as mic

    bug = BY_NAME[bug] if isinstance(bug, str) else bug
    result = BugResult(bug.name, runtime, question=bug.question)
    guard = Stages(result.timings, result.errors).guard
    with _tool_log(result.tool_warnings):
        s = guard("load", mic.load, path)
        if s is not None:
            _diagnose(bug, result, s, guard)
    return result


def _run(bug: Bug, runtime: str, seconds: float, result: BugResult, build_dir: Path,
         log_dir: Path, save_to: Path | None = None, investigate: dict | None = None) -> None:
    import microscope_jupyter as mic

    node = s = None
    lap, guard = Stages(result.timings, result.errors).pair()

    try:
        beam = build(bug, build_dir)
        node = start_node(runtime, prefix="bug", log_dir=log_dir)
        s = mic.attach(node.name, cookie=node.cookie)
        wait_until(lambda: s.eval_erlang("init:get_status().") == (mic.Atom("started"),) * 2)
        load_module(s, beam)
        assert s.rpc(bug.module, "start", []) == mic.Atom("ok")
        _warm_up(s, bug.module, busy_polls=3)
        lap("start")
        rec = guard("trace", s.trace, **({} if investigate is not None else bug.trace))
        if rec is None:
            return
        triggered = s.eval_erlang("erlang:function_exported(M, trigger, 0).",
                                  M=mic.Atom(bug.module)) is True

        def trigger():
            if triggered:
                guard("trigger", s.rpc, bug.module, "trigger", [], 10)
        trigger()
        time.sleep(seconds)
        guard("stop", rec.stop)
        lap("trace")
        if investigate is not None:
            inv = guard("investigate", s.investigate, bug.question, approve=investigate,
                        reproduce=trigger)
            result.traces = None if inv is None else inv.traces_run
            result.path = [] if inv is None else [
                f"{r.hypothesis}: {r.decision}; {r.showed}" for r in inv.path.itertuples()]
            lap("investigate")
        result.node_log = node_problems(node.log())
        result.dropped = (guard("status", rec.status) or {}).get("dropped")
        guard("app stop", s.rpc, bug.module, "stop", [], 10)
        if save_to is not None:
            guard("save", s.save, save_to, overwrite=True)
            (Path(save_to) / "node.log").write_text(node.log())
        _diagnose(bug, result, s, guard)
        lap("diagnosis")
    except Exception as exc:
        result.errors.append({"stage": "harness", "error": f"{type(exc).__name__}: {exc}",
                              "traceback": traceback.format_exc(limit=-6)})
    finally:
        if s is not None:
            try:
                s.detach()
            except Exception:
                pass
        if node is not None:
            node.stop()


def _diagnose(bug: Bug, result: BugResult, s, guard) -> None:
    events = guard("events", lambda: s.events)
    result.events = 0 if events is None else len(events)
    findings = guard("findings", s.findings)
    if findings is not None:
        bad = findings[findings["severity"].isin(["error", "warning"])]
        result.findings = [f"{r.kind} ({r.severity}) {r.name or r.pid}"
                           for r in bad.itertuples(index=False)]
    explanation = guard("explain", s.explain, bug.question)
    if explanation is None:
        return
    result.answer = answer_text(explanation)
    result.causes = [{"kind": c.kind, "summary": c.summary}
                     for c in explanation.causes.itertuples(index=False)]
    result.verdict, result.matched, result.missing, result.names_process = \
        judge(bug, result.answer)
