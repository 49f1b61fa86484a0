"""Terms written as Elixir source (render.elixir_code) compile and mean the
term: each value, evaluated by a real Elixir on the demo node, comes back
equal, and its pattern matches it."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import strategies
from microscope_jupyter import Atom
from microscope_jupyter.beam.terms import ExportFun, ImproperList, MapPairs, Pid
from microscope_jupyter.render.elixir_code import ElixirCode

# atoms with quotes, interpolation, unicode, dots, reserved words and aliases
atom_names = st.one_of(
    st.sampled_from(["ok", "do", "end", "when", "Elixir.Demo.WorkerB", "Elixir.lower",
                     "with space", 'q"uote', "#{x}", "ünï", "a.b", "x?", "y!", "@at", "_"]),
    st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=8)
).filter(lambda n: n not in ("true", "false", "nil", "undefined"))
atoms = atom_names.map(Atom)
scalars = st.one_of(
    atoms, strategies.scalars,
    st.builds(ExportFun, st.sampled_from([Atom("erlang"), Atom("Elixir.Enum")]),
              st.sampled_from([Atom("max"), Atom("map")]), st.integers(0, 3)))


terms = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4).map(tuple),
    st.lists(inner, max_size=4),
    st.lists(st.tuples(atoms, inner), min_size=1, max_size=3),            # keyword lists
    st.builds(ImproperList, st.lists(inner, min_size=1, max_size=3), scalars.filter(
        lambda t: not isinstance(t, list))),
    st.dictionaries(atoms, inner, max_size=3),
    st.dictionaries(st.one_of(st.text(max_size=4), st.integers(-5, 5)), inner, max_size=3),
    st.lists(st.tuples(st.lists(st.integers(0, 3), max_size=2), inner), max_size=2,
             unique_by=lambda pair: repr(pair[0])).map(
        lambda pairs: MapPairs(tuple(pairs)))), max_leaves=12)


@pytest.fixture(scope="module")
def elixir(demo_node):
    import microscope_jupyter as mic
    s = mic.attach(demo_node.name, cookie=demo_node.cookie)

    def run(source, **bindings):
        binding = [(Atom(k), v) for k, v in bindings.items()]
        return s.rpc("Elixir.Code", "eval_string", [source, binding])[0]
    yield run
    s.detach()


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(terms)
def test_values_evaluate_to_the_term_and_patterns_match_it(elixir, term):
    """The node itself compares (===, Erlang's own equality) what the source
    built with the term sent to it."""
    code = ElixirCode()
    value, pattern = code.value(term), code.pattern(term)
    same, matched = elixir(f"v = {value}\n{{v === expected, match?({pattern}, v)}}",
                           expected=term)
    assert same is True, value
    assert matched is True, (pattern, value)


def test_what_a_literal_cannot_say_is_stood_in_for(elixir):
    node = Atom("x@y")
    worker, other = Pid(node, 90, 0, 1), Pid(node, 91, 0, 1)
    state = {Atom("peer"): worker, Atom("gone"): other, Atom("since"): 1_700_000_000_000,
             Atom("at"): {Atom("__struct__"): Atom("Elixir.DateTime")}, Atom("n"): 3}
    code = ElixirCode(bound={worker: "worker"})
    assert code.pattern(state) == "%{peer: ^worker, gone: _, since: _, at: _, n: 3}"
    assert code.pattern(state, only=[Atom("n")]) == "%{n: 3}"
    assert "worker" in code.value(state) and ":erlang.list_to_pid" in code.value(state)
    matched = elixir(f"worker = self()\nmatch?({code.pattern(state)}, "
                     "%{peer: self(), gone: spawn(fn -> :ok end), since: 5, at: DateTime.utc_now(), "
                     "n: 3})")
    assert matched is True
