"""Reading the agent's column tables (the format of columns/2 in the agent)."""

from __future__ import annotations

import struct

import pytest

from microscope_jupyter.agent.tables import Columns, read_pids, read_relations
from microscope_jupyter.beam.etf import decode, encode
from microscope_jupyter.beam.terms import Atom, Pid
from microscope_jupyter.store.columns import RELATIONS
from microscope_jupyter.errors import MicroscopeError

A = Atom


def reply(rows, columns):
    # Through the real codec: binaries that are valid UTF-8 come back as str.
    return decode(encode((A("microscope_columns"), rows, columns)))


def test_columns_of_each_kind():
    mfa = (A("gen_server"), A("loop"), 7)
    table = Columns.read(reply(3, [
        (A("pid"), A("pids"), b"<0.1.0> <0.22.3> "),
        (A("mem"), A("ints"), struct.pack("<3q", 10, -2, 2**40)),
        (A("call"), A("terms"), ([mfa, A("undefined")], struct.pack("<3I", 0, 1, 0))),
    ]))
    assert table.texts("pid").tolist() == ["<0.1.0>", "<0.22.3>", None]
    assert table.ints("mem").tolist() == [10, -2, 2**40]
    rendered = []
    values = table.terms("call", lambda v: rendered.append(v) or str(v))
    assert values.tolist() == [str(mfa), "undefined", str(mfa)]
    assert len(rendered) == 2   # each distinct value once


def test_an_empty_table():
    table = Columns.read(reply(0, [(A("pid"), A("pids"), b""), (A("n"), A("ints"), b""),
                                   (A("t"), A("terms"), ([], b""))]))
    assert table.texts("pid").tolist() == [] and table.ints("n").tolist() == []
    assert table.terms("t").tolist() == []


def test_an_unreadable_reply_says_what_to_do():
    with pytest.raises(MicroscopeError, match="detach and attach again"):
        Columns.read([(1, 2, 3)])
    table = Columns.read(reply(1, [(A("n"), A("ints"), struct.pack("<q", 1))]))
    with pytest.raises(MicroscopeError, match="is ints, not pids"):
        table.texts("n")


def pid_list(pids, nodes):
    records = b"".join(struct.pack("<HIII", nodes.index(p.node), p.id, p.serial, p.creation)
                       for p in pids)
    return (A("microscope_pids"), nodes, records)


def test_pid_lists_keep_node_and_creation():
    here, there = A("demo@host"), A("other@host")
    pids = [Pid(here, 100, 0, 1700000001), Pid(there, 7, 3, 2), Pid(here, 2**31, 1, 0)]
    assert read_pids(decode(encode(pid_list(pids, [here, there])))) == pids
    assert read_pids(decode(encode(pid_list([], [])))) == []


def test_relations_index_into_their_pids():
    here = A("demo@host")
    a, b, c = (Pid(here, n, 0, 1) for n in (1, 2, 3))
    rows = [(0, 0, 1), (1, 2, 2), (2, 1, 0)]     # a link b, b monitored_by c, c monitor a
    term = (A("microscope_relations"), pid_list([a, b, c], [here]),
            b"".join(struct.pack("<IBI", *row) for row in rows))
    table = read_relations(decode(encode(term)))
    assert table.pids == [a, b, c]
    assert [(table.pids[h], RELATIONS[r], table.pids[p]) for h, r, p in
            zip(table.holder, table.relation, table.peer)] == [
        (a, "link", b), (b, "monitored_by", c), (c, "monitor", a)]
    with pytest.raises(MicroscopeError, match="relations this client cannot read"):
        read_relations((A("microscope_columns"), 1, 2))
