"""Trace specs are checked in Python before the node sees them."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from microscope_jupyter.agent.beam_file import SOURCE_PATH
from microscope_jupyter.agent.beam_file import AGENT_VERSION
from microscope_jupyter.agent.spec import TraceSpec, module_spec, parse_duration, process_spec
from microscope_jupyter.beam.terms import Atom
from microscope_jupyter.errors import TraceLimitError, TraceSpecError

ANY = Atom("_")


@pytest.mark.parametrize("text, expected", [
    ("MyApp.Worker", ("Elixir.MyApp.Worker", ANY, ANY)),
    ("MyApp.Worker.handle_call/3", ("Elixir.MyApp.Worker", "handle_call", 3)),
    ("MyApp.Worker.valid?", ("Elixir.MyApp.Worker", "valid?", ANY)),
    (":lists.seq/2", ("lists", "seq", 2)),
    ("lists:seq/2", ("lists", "seq", 2)),
    ("gen_server", ("gen_server", ANY, ANY)),
    ("Elixir.MyApp.Worker", ("Elixir.MyApp.Worker", ANY, ANY)),
])
def test_module_spec(text, expected):
    assert module_spec(text) == expected


def test_unreadable_module_spec():
    with pytest.raises(TraceSpecError, match="cannot read 'My App!'"):
        module_spec("My App!")


@pytest.mark.parametrize("proc, expected", [
    ("<0.12.0>", "<0.12.0>"), ("MyApp.Registry", "Elixir.MyApp.Registry"),
    ("logger", "logger"), (":logger", "logger"),
])
def test_process_spec(proc, expected):
    assert process_spec(proc) == expected


@pytest.mark.parametrize("value, seconds", [(5, 5.0), ("5s", 5.0), ("500ms", 0.5), ("2m", 120.0),
                                            (None, None)])
def test_durations(value, seconds):
    assert parse_duration(value) == seconds


@pytest.mark.parametrize("limits, fragment", [
    ({"max_events": 0}, "max_events=0 cannot work"),
    ({"max_rate": -5}, "max_rate=-5 cannot work"),
    ({"payload_limit": 1.5}, "payload_limit=1.5 cannot work"),
    ({"max_events": True}, "max_events=True cannot work"),
])
def test_impossible_limits(limits, fragment):
    with pytest.raises(TraceLimitError, match=re.escape(fragment)):
        TraceSpec.build(**limits)


def test_agent_opts_use_atoms_only_for_keys_and_fixed_values():
    opts = TraceSpec.build(["MyApp.Worker"], ["MyApp.Worker.init/1"], duration="1s").to_agent_opts()
    assert opts[Atom("procs")] == ["Elixir.MyApp.Worker"]          # a binary, resolved on the node
    assert opts[Atom("modules")] == [("Elixir.MyApp.Worker", "init", 1)]
    assert opts[Atom("duration_ms")] == 1000
    assert all(isinstance(k, Atom) for k in opts)


def test_python_and_erlang_agree_on_the_agent_version():
    source = Path(SOURCE_PATH).read_text()
    assert f"-define(VERSION, {AGENT_VERSION})." in source
