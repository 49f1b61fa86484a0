"""One declaration of trace limits: ``TraceLimits`` and every surface come from
``agent/options.py``, and no module spells a default or a flag of its own.

The last test reads the package's source: a trace option's name (or a flag,
or a way a duration used to be spelled) given a number anywhere but in the
table fails it, with where.
"""

from __future__ import annotations

import ast
import dataclasses
import re
from pathlib import Path

import pytest

from microscope_jupyter.agent.options import (ASSISTANT_CEILINGS, DURATION, LIMITS, OPTIONS,
                                              TRACE_FLAGS, TraceLimits)
from microscope_jupyter.agent.spec import TraceSpec
from microscope_jupyter.errors import TraceLimitError

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "microscope_jupyter"

# Ways an option was spelled before the table generated them, besides its
# name, keyword and flags: an alias must not come back with a default of its own.
ALIASES = {"duration_ms", "max_duration", "max_payload", "seconds", "for"}
# Values that differ from a notebook trace's on purpose, each named once where it
# is used (path -> spellings). The supervision tree's "trace it for 5 s" button
# (widgets/, js/) is a quick look, not a duration default; it is outside this room.
DELIBERATE = {
    "microscope_jupyter/agent/flight.py": {"mailbox_ms", "flush_ms"},   # COUNTERS_OPTIONS
    "microscope_jupyter/widgets/supervision_tree.py": {"seconds"},
    "js/src/supervision_tree.js": {"seconds"},
    "microscope_jupyter/investigation.py": {"seconds"},   # Budget: all its traces together
}


def spellings() -> set[str]:
    """Every name and flag of an option that takes a number."""
    out = set(ALIASES)
    for option in [o for o in OPTIONS.values() if o.kind is int] + [DURATION]:
        out |= {option.name, option.keyword, option.flag, option.flag[2:]}
        if option.ceiling_flag:
            out |= {option.ceiling_flag, option.ceiling_flag[2:]}
    return out


def _number(node: ast.AST | None) -> bool:
    return (isinstance(node, ast.Constant) and isinstance(node.value, (int, float))
            and not isinstance(node.value, bool))


def _name(node: ast.AST) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    return None


def spelled_defaults(source: str, words: set[str]) -> list[tuple[int, str, object]]:
    """(line, spelling, value) wherever ``source`` gives a trace option a number."""
    found = []

    def hit(node: ast.AST, word: str | None, value: ast.AST | None) -> None:
        if word in words and _number(value):
            found.append((node.lineno, word, value.value))

    text_pattern = re.compile(r"(?<![\w-])(%s)\b[^.=]{0,120}?\(?default:?\s*"
                              r"(\d[\d,_]*(?:\.\d+)?)" % "|".join(
                                  re.escape(w) for w in sorted(words, key=len, reverse=True)
                                  if len(w) > 3))
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            args = node.args
            positional = args.posonlyargs + args.args
            for arg, default in zip(positional[len(positional) - len(args.defaults):],
                                    args.defaults):
                hit(arg, arg.arg, default)
            for arg, default in zip(args.kwonlyargs, args.kw_defaults):
                hit(arg, arg.arg, default)
        elif isinstance(node, ast.AnnAssign):
            hit(node, _name(node.target), node.value)
        elif isinstance(node, ast.Assign):
            for target in node.targets:
                hit(node, _name(target), node.value)
        elif isinstance(node, ast.Call):
            if _name(node.func) in ("timedelta", "Timedelta"):
                continue                                       # time arithmetic, no option
            for keyword in node.keywords:
                hit(node, keyword.arg, keyword.value)
                if keyword.arg == "default" and node.args:     # argparse: ("--max-rate", default=N)
                    hit(node, _name(node.args[0]), keyword.value)
            if len(node.args) >= 2:                            # d.get("seconds", 5)
                hit(node, _name(node.args[0]), node.args[1])
        elif isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values):
                if key is not None:
                    hit(node, _name(key), value)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            for match in text_pattern.finditer(node.value):      # docs and help texts
                found.append((node.lineno, match[1], match[2]))
    return found


def spelled_in_js(source: str, words: set[str]) -> list[tuple[int, str, object]]:
    names = "|".join(re.escape(w) for w in words if re.fullmatch(r"\w+", w))
    return [(source.count("\n", 0, m.start()) + 1, m[1], m[2])
            for m in re.finditer(r"\b(%s)\s*:\s*(\d[\d_.]*)" % names, source)]


def every_spelled_default(root: Path = ROOT) -> list[tuple[str, int, str, object]]:
    """Every place under ``root`` that gives a trace option a number, but the table."""
    words = spellings()
    out = []
    for path in sorted((root / "microscope_jupyter").rglob("*.py")):
        if "static" in path.parts or path.name == "options.py" and path.parent.name == "agent":
            continue
        rel = str(path.relative_to(root))
        out += [(rel, *hit) for hit in spelled_defaults(path.read_text(), words)]
    for path in sorted((root / "js" / "src").glob("*.js")):
        rel = str(path.relative_to(root))
        out += [(rel, *hit) for hit in spelled_in_js(path.read_text(), words)]
    return out


# -- the value -----------------------------------------------------------------------


def test_the_limits_are_the_tables():
    fields = {f.name: f.default for f in dataclasses.fields(TraceLimits)}
    assert fields == {name: option.default for name, option in LIMITS.items()}
    assert set(fields) == {"max_events", "max_rate", "payload_limit", "duration_s"}
    assert all(OPTIONS[name] is LIMITS[name] for name in fields if name != "duration_s")
    assert repr(TraceLimits()) == ("TraceLimits(max_events=1,000,000, max_rate=200,000, "
                                   "payload_limit=4,096, duration_s=None)")
    for name, option in LIMITS.items():
        assert f"``{name}`` ({option.default!r}): {option.doc}." in TraceLimits.__doc__


def test_a_limit_is_checked_as_a_trace_checks_it():
    for bad in ({"max_rate": 0}, {"payload_limit": 2_000_000}, {"duration_s": -1}):
        with pytest.raises(TraceLimitError) as from_limits:
            TraceLimits(**bad)
        keyword = {"duration_s": "duration"}.get(*bad, *bad)
        with pytest.raises(TraceLimitError) as from_trace:
            TraceSpec.build(**{keyword: bad[next(iter(bad))]})
        assert str(from_limits.value) == str(from_trace.value)
    assert TraceLimits(duration_s="2m").duration_s == 120.0
    with pytest.raises(TraceLimitError, match=r"^unknown trace limit 'max_rat'; did you mean "
                                              r"max_rate\?"):
        TraceLimits().replace(max_rat=5)
    with pytest.raises(dataclasses.FrozenInstanceError):
        TraceLimits().max_rate = 5


def test_tighter_above_and_the_keywords_of_a_trace():
    mine = TraceLimits(max_events=10, duration_s=60)
    assert mine.tighter(ASSISTANT_CEILINGS) == TraceLimits(
        max_events=10, max_rate=ASSISTANT_CEILINGS.max_rate,
        duration_s=ASSISTANT_CEILINGS.duration_s)
    assert TraceLimits().tighter(TraceLimits()) == TraceLimits()      # no bound stays none
    assert mine.above(ASSISTANT_CEILINGS) == ("max_rate", 200_000, ASSISTANT_CEILINGS.max_rate)
    assert mine.tighter(ASSISTANT_CEILINGS).above(ASSISTANT_CEILINGS) is None
    assert TraceLimits(duration_s=5).trace_options() == {
        "max_events": 1_000_000, "max_rate": 200_000, "payload_limit": 4096, "duration": 5.0}
    spec = TraceSpec.build(**mine.trace_options())
    assert (spec.max_events, spec.duration_s) == (10, 60.0)


def test_the_assistants_ceilings_are_the_one_tighter_value():
    """Deliberately tighter than a notebook's in every limit it sets, never looser,
    and bounded in time; MCP's Ceilings() is it, and the human may change any."""
    pytest.importorskip("mcp")
    from microscope_jupyter.assistant import Ceilings

    notebook = TraceLimits()
    assert notebook.tighter(ASSISTANT_CEILINGS) == ASSISTANT_CEILINGS
    assert ASSISTANT_CEILINGS.duration_s is not None
    assert dataclasses.asdict(Ceilings()) == dataclasses.asdict(ASSISTANT_CEILINGS)
    assert isinstance(Ceilings(), TraceLimits)
    two = Ceilings(duration_s=2.0)
    assert (two.duration_s, two.max_rate) == (2.0, ASSISTANT_CEILINGS.max_rate)
    assert repr(two).startswith("Ceilings(max_events=100,000,")
    with pytest.raises(TraceLimitError, match="unknown trace limit 'duration'; did you mean "
                                              "duration_s?"):
        Ceilings(duration=2)


# -- the surfaces ----------------------------------------------------------------------


def test_the_trace_magic_takes_the_tables_flags():
    from microscope_jupyter.magics import TRACE_OPTIONS, TRACE_USAGE, MicroscopeMagics, \
        _trace_kwargs

    assert set(TRACE_OPTIONS) - {"modules", "erlang"} == {f[2:] for f in TRACE_FLAGS}
    assert {o.name for o in TRACE_FLAGS.values()} == \
        {n for n, o in OPTIONS.items() if o.public} | {"duration_s"}
    for flag, option in TRACE_FLAGS.items():
        assert f"[{flag}" in TRACE_USAGE and flag in MicroscopeMagics.trace.__doc__
        value = {bool: None, int: 7}.get(option.kind, "5s")
        kwargs = _trace_kwargs({flag[2:]: True if value is None else value})
        assert kwargs == {option.keyword: not option.default if value is None else value}
        TraceSpec.build(**kwargs)          # a keyword a trace takes, a value it accepts
    assert "(default 200,000)" in MicroscopeMagics.trace.__doc__


def test_the_mcp_command_takes_the_ceilings_flags(monkeypatch):
    import microscope_jupyter.cli as cli

    seen = {}
    monkeypatch.setattr(cli, "_mcp", lambda args: seen.update(args=args) or 0)
    cli.main(["mcp", "--node", "app@host"])
    args = seen["args"]
    assert {name: getattr(args, name) for name in LIMITS} == \
        dataclasses.asdict(ASSISTANT_CEILINGS)
    flags = [option.ceiling_flag for option in LIMITS.values()]
    assert flags == ["--max-events", "--max-rate", "--max-payload", "--max-duration"]
    cli.main(["mcp", "--node", "app@host", "--max-rate", "10", "--max-duration", "2.5"])
    args = seen["args"]
    assert (args.max_rate, args.duration_s, args.max_events) == (10, 2.5, 100_000)


def test_the_flight_recorder_takes_its_keywords_from_one_place():
    import inspect

    from microscope_jupyter.agent.flight import start_flight_recorder
    from microscope_jupyter.session import Session

    theirs = inspect.signature(start_flight_recorder).parameters
    ours = inspect.signature(Session.flight_recorder).parameters
    for name, parameter in theirs.items():
        if parameter.kind == parameter.KEYWORD_ONLY:
            assert ours[name].default == parameter.default, name
    assert Session.flight_recorder.__doc__ == start_flight_recorder.__doc__


# -- the source -------------------------------------------------------------------------


def test_no_module_spells_a_default_the_table_does_not_generate():
    found = [(path, line, word, value) for path, line, word, value in every_spelled_default()
             if word not in DELIBERATE.get(path, ())]
    assert found == []


@pytest.mark.parametrize("source", [
    "class Ceilings:\n    max_rate: int = 50_000\n",
    "def propose(duration_s: float = 5.0): ...\n",
    "parser.add_argument('--max-rate', type=int, default=50_000)\n",
    "TraceSpec.build(max_events=10)\n",
    "options = {'mailbox_ms': 1000}\n",
    "content.get('seconds', 5)\n",
    'DOC = """--max-events N    stop after N events (default 1,000,000)"""\n',
])
def test_the_source_check_sees_each_way_of_spelling_a_default(source):
    assert spelled_defaults(source, spellings()) != []


def test_the_source_check_leaves_other_numbers_alone():
    assert spelled_defaults("def rpc(timeout: float = 30.0, limit=50_000): ...\n"
                            "TRACE = {'modules': str, 'max-rate': int}\n"
                            "LEVELS = {'adaptive': 0}\n"
                            "deadline = now + timedelta(seconds=10)\n"
                            '"""A limit that cannot work, such as max_events=0."""\n',
                            spellings()) == []
