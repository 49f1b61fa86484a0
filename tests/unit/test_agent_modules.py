"""The agent is one module per concept, and they are one unit: the lists that
name them agree, one header holds the version, each module says what it owns.

(Loading and unloading them on real nodes: tests/integration/test_agent_modules.py.)
"""

from __future__ import annotations

import re
from pathlib import Path

from microscope_jupyter.agent.beam_file import (AGENT_MODULE, AGENT_VERSION, SOURCE_DIR,
                                                agent_modules)

ROOT = SOURCE_DIR.parent.parent
SOURCES = {p.stem: p.read_text() for p in SOURCE_DIR.glob("*.erl")}


def test_python_loads_every_module_and_the_facade_last():
    assert sorted(agent_modules()) == sorted(SOURCES)
    assert agent_modules()[-1] == AGENT_MODULE


def test_the_facade_names_every_other_module():
    listed = re.search(r"^-define\(MODULES, \[(.*?)\]\)\.", SOURCES[AGENT_MODULE], re.S | re.M)[1]
    assert sorted(m.strip() for m in listed.split(",")) == sorted(set(SOURCES) - {AGENT_MODULE})


def test_each_module_is_named_after_its_file_and_opens_with_its_doc():
    for name, text in SOURCES.items():
        assert text.startswith("%%% @doc "), name
        assert re.search(rf"^-module\({name}\)\.$", text, re.M), name


def test_one_version_for_all_in_the_header_every_module_includes():
    header = (SOURCE_DIR / "microscope_agent.hrl").read_text()
    assert f"-define(VERSION, {AGENT_VERSION})." in header
    for name, text in SOURCES.items():
        assert '-include("microscope_agent.hrl").' in text, name
        assert "-define(VERSION" not in text, name


def test_the_tracers_state_is_shared_by_the_tracer_and_its_event_format_only():
    including = {name for name, text in SOURCES.items()
                 if '-include("microscope_agent_tracer.hrl").' in text}
    assert including == {"microscope_agent_tracer", "microscope_agent_events"}


def test_the_sdist_and_the_wheel_carry_every_module():
    manifest = (ROOT / "MANIFEST.in").read_text()
    assert "recursive-include elixir_hooks/agent *.erl *.hrl" in manifest
    assert '"agent/*.beam"' in (ROOT / "pyproject.toml").read_text()
