"""Terms as Elixir writes them (and Erlang, on request); names and MFAs."""

from __future__ import annotations

import doctest

import pytest

import microscope_jupyter.render.elixir as elixir
import microscope_jupyter.render.names as names
from microscope_jupyter.beam.terms import Atom, BitBinary, ExportFun, ImproperList, Pid, Reference
from microscope_jupyter.render.elixir import render, to_elixir

N = Atom("demo@host")


@pytest.mark.parametrize("module", [elixir, names])
def test_docstring_examples(module):
    assert doctest.testmod(module, extraglobs={"Atom": Atom}).failed == 0


@pytest.mark.parametrize("term, text", [
    ({Atom("count"): 1}, "%{count: 1}"),
    ({"a": 1, 2: Atom("x")}, '%{"a" => 1, 2 => :x}'),
    ({Atom("__struct__"): Atom("Elixir.MyApp.User"), Atom("name"): "ada"}, '%MyApp.User{name: "ada"}'),
    (Atom("Elixir.MyApp.WorkerB"), "MyApp.WorkerB"),
    (Atom("odd atom"), ':"odd atom"'),
    (Atom("valid?"), ":valid?"),
    ((Atom("ok"), None, True), "{:ok, nil, true}"),
    ([(Atom("a"), 1), (Atom("b"), [1, 2])], "[a: 1, b: [1, 2]]"),
    ([104, 105], '~c"hi"'),
    ([1, 2], "[1, 2]"),
    ([], "[]"),
    (ImproperList([1, 2], 3), "[1, 2 | 3]"),
    ("line\n\"q\"", '"line\\n\\"q\\""'),
    (b"\x01\xff", "<<1, 255>>"),
    (Pid(N, 123, 0, 1), "#PID<0.123.0>"),
    (Reference(N, 1, (3, 2, 1)), "#Reference<0.1.2.3>"),
    (ExportFun(Atom("lists"), Atom("map"), 2), "&:lists.map/2"),
    (BitBinary(b"\xa0", 3), "<<...3 bits>>"),
    ((Atom("$microscope_truncated"), 9000), "#Truncated<9000 bytes>"),
])
def test_elixir_syntax(term, text):
    assert to_elixir(term) == text


def test_length_cap_and_erlang_syntax():
    long = to_elixir(list(range(1000)), limit=30)
    assert len(long) == 30 and long.endswith("...")
    assert render({Atom("count"): 1}, "erlang") == "#{count => 1}"
    assert render((Atom("ok"), "hi"), "erlang") == '{ok,<<"hi"/utf8>>}'
