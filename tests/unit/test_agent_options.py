"""Python and the Erlang agent agree on every trace option and event kind.

The agent keeps its own defaults and limit checks (it runs on the node, with
no Python): these tests read them out of its sources and fail on any drift
from ``agent/options.py`` and ``store/schema.py``.
"""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

import microscope_jupyter as mic
from microscope_jupyter.agent.beam_file import SOURCE_DIR
from microscope_jupyter.agent.options import OPTIONS, SPECIAL
from microscope_jupyter.agent.spec import TraceSpec
from microscope_jupyter.beam.terms import Atom
from microscope_jupyter.errors import TraceLimitError
from microscope_jupyter.store.schema import KINDS

# The options' defaults, their limit checks and the payload ceiling are the
# agent's scope module's; the event kinds are its event format's.
SOURCE = "\n".join(Path(SOURCE_DIR, f"{module}.erl").read_text()
                   for module in ("microscope_agent_scope", "microscope_agent_events"))
PYTHON_SIDE_KINDS = {20}  # annotation is written by Python, never the agent


def erlang_value(text: str):
    text = text.strip()
    if re.fullmatch(r"-?\d+", text):
        return int(text)
    return {"true": True, "false": False, "[]": []}.get(text, Atom(text))


def agent_defaults(source: str) -> dict:
    body = re.search(r"^defaults\(\) ->\s*#\{(.*?)\}\.", source, re.S | re.M)[1]
    pairs = [p.split("=>") for p in body.split(",")]
    return {k.strip(): erlang_value(v) for k, v in pairs}


def agent_checked_limits(source: str) -> set[str]:
    body = re.search(r"^check_limits\(Opts\) ->.*?\|\| K <- \[(.*?)\]", source, re.S | re.M)[1]
    return {k.strip() for k in body.split(",")}


def agent_kinds(source: str) -> dict[int, str]:
    return {int(code): name.lower() for name, code in
            re.findall(r"^-define\(K_([A-Z_]+), (\d+)\)\.", source, re.M)}


def drift(source: str) -> list[str]:
    """Every way the agent's source disagrees with the Python declarations."""
    out = []
    erl = agent_defaults(source)
    python_keys = set(OPTIONS) | set(SPECIAL.values())
    out += [f"only the agent has option {k}" for k in sorted(set(erl) - python_keys)]
    out += [f"only Python has option {k}" for k in sorted(python_keys - set(erl))]
    for name, option in OPTIONS.items():
        if name in erl and erl[name] != option.default:
            out.append(f"{name}: agent default {erl[name]!r}, Python {option.default!r}")
    positive = {n for n, o in OPTIONS.items() if o.kind is int}
    checked = agent_checked_limits(source)
    out += [f"the agent does not check {k}" for k in sorted(positive - checked)]
    out += [f"the agent checks {k}, Python does not" for k in sorted(checked - positive)]
    agent = agent_kinds(source)
    for code, name in agent.items():
        if KINDS.get(code) != name:
            out.append(f"kind {code}: agent {name}, Python {KINDS.get(code)}")
    out += [f"kind {c} ({KINDS[c]}) is unknown to the agent"
            for c in sorted(set(KINDS) - set(agent) - PYTHON_SIDE_KINDS)]
    return out


def test_the_agent_and_python_agree():
    assert drift(SOURCE) == []


@pytest.mark.parametrize("edit", [
    ("max_rate => 200000", "max_rate => 100000"),            # a default changed on one side
    ("logs => true}", "logs => true, thin => 5}"),            # an option only the agent has
    ("-define(K_TIMEOUT, 23).", "-define(K_TIMEOUT, 26)."),   # a kind renumbered
    ("mailbox_ms, sample]", "mailbox_ms]"),                  # a check dropped
])
def test_an_edit_on_one_side_is_caught(edit):
    old, new = edit
    assert old in SOURCE
    assert drift(SOURCE.replace(old, new)) != []


def test_session_trace_shows_every_public_option_with_its_default():
    signature = inspect.signature(mic.Session.trace)
    for name, option in OPTIONS.items():
        if option.public:
            assert signature.parameters[name].default == option.default
            assert f"``{name}`` ({option.default!r})" in mic.Session.trace.__doc__
        else:
            assert name not in signature.parameters


def test_every_option_reaches_the_agent_under_its_own_name():
    opts = TraceSpec.build(max_rate=7, mailbox_ms=250).to_agent_opts()
    assert {str(k) for k in opts} == set(OPTIONS) | set(SPECIAL.values()) - {"exclude"}
    assert opts[Atom("max_rate")] == 7 and opts[Atom("mailbox_ms")] == 250


def test_a_payload_limit_past_its_ceiling_is_refused_on_both_sides():
    ceiling = int(re.search(r"^-define\(MAX_PAYLOAD_LIMIT, (\d+)\)\.", SOURCE, re.M)[1])
    assert ceiling == OPTIONS["payload_limit"].ceiling
    TraceSpec.build(payload_limit=ceiling)
    with pytest.raises(TraceLimitError, match=r"^payload_limit=2,000,000 is above its ceiling of "
                                              r"65,536: a larger payload is copied"):
        TraceSpec.build(payload_limit=2_000_000)


def test_unknown_and_impossible_options_are_one_line_each():
    with pytest.raises(TraceLimitError, match="unknown trace option 'max_rat'; did you mean "
                                              "max_rate?"):
        TraceSpec.build(max_rat=5)
    with pytest.raises(TraceLimitError, match=r"messages='yes' cannot work; it must be True"):
        TraceSpec.build(messages="yes")


def test_the_nodes_log_is_recorded_by_default_on_both_sides():
    """logs=True: the default trace records Logger events and crash and supervisor reports."""
    assert OPTIONS["logs"].default is True and OPTIONS["logs"].public
    assert agent_defaults(SOURCE)["logs"] is True
    assert "logs" in inspect.signature(mic.Session.trace).parameters
    assert TraceSpec.build(logs=False).to_agent_opts()[Atom("logs")] is False
