"""The codec against the node itself: what we send, it reads; what it makes, we read."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings

from microscope_jupyter.beam.etf import decode, encode
from microscope_jupyter.beam.terms import (Atom, BitBinary, ExportFun, Fun, ImproperList,
                                           MapPairs, Pid, Port, Reference)
from strategies import terms
from strict import same_term

# The node round-trips X through its own codec and also judges our bytes.
ECHO = "{binary_to_term(term_to_binary(X)), term_to_binary(X), binary_to_term(B) =:= X}."


@given(term=terms)
@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_terms_survive_python_node_python(session, term):
    echoed, node_bytes, node_accepts_ours = session.eval_erlang(ECHO, X=term, B=encode(term))
    assert same_term(echoed, term)
    assert same_term(decode(node_bytes), term)
    assert node_accepts_ours is True


# Terms only the node can make. Each returns {Term, term_to_binary(Term)}.
NODE_BUILT = {
    "pid": "self()",
    "remote-looking pid": "list_to_pid(\"<0.4.5>\")",
    "reference": "make_ref()",
    "alias": "erlang:alias()",
    "port": "hd(erlang:ports())",
    "local fun": "fun(Y) -> Y + 1 end",
    "closure with free variables": "Z = {captured, [1,2]}, fun(Y) -> {Y, Z} end",
    "external fun": "fun lists:map/2",
    "bignum": "1 bsl 300",
    "negative bignum": "-(1 bsl 90) - 7",
    "improper list": "[1, 2 | three]",
    "map with non-atom keys": "#{1 => a, <<\"bin\">> => b, {t, 1} => c, [l] => d, 2.5 => e}",
    "map with keys Python merges": "#{1 => int, 1.0 => float}",
    "nested structs": "#{'__struct__' => 'Elixir.MyApp.User', name => <<\"ada\">>,"
                      " address => #{'__struct__' => 'Elixir.MyApp.Address', city => <<\"x\">>}}",
    "bitstring": "<<1:3>>",
    "unicode atom": "'héllo wörld'",
    "charlist": "\"hello\"",
    "float": "math:pi()",
    "large tuple": "list_to_tuple(lists:seq(1, 300))",
    "compressed": "lists:duplicate(500, <<\"same\">>)",
}
EXPECTED_TYPES = {
    "pid": Pid, "remote-looking pid": Pid, "reference": Reference, "alias": Reference,
    "port": Port, "local fun": Fun, "closure with free variables": Fun,
    "external fun": ExportFun, "bignum": int, "negative bignum": int,
    "improper list": ImproperList, "map with non-atom keys": MapPairs,
    "map with keys Python merges": MapPairs, "nested structs": dict, "bitstring": BitBinary,
    "unicode atom": Atom, "charlist": list, "float": float, "large tuple": tuple,
    "compressed": list,
}


@pytest.mark.parametrize("label", sorted(NODE_BUILT))
def test_node_built_terms_decode_and_go_back(session, label):
    src = NODE_BUILT[label]
    opts = "[compressed]" if label == "compressed" else "[]"
    # The node keeps T, so the comparison below is against the very term it made.
    term, raw = session.eval_erlang(
        f"T = begin {src} end, persistent_term:put(K, T), {{T, term_to_binary(T, {opts})}}.",
        K=("microscope_test", label))
    from_bytes = decode(raw)
    assert isinstance(from_bytes, EXPECTED_TYPES[label])
    assert same_term(from_bytes, term)
    # Our re-encoding must be exactly the node's term, funs and refs included.
    assert session.eval_erlang("T = persistent_term:get(K), persistent_term:erase(K), "
                               "{binary_to_term(B) =:= T, binary_to_term(B2) =:= T}.",
                               K=("microscope_test", label), B=encode(from_bytes),
                               B2=encode(term)) == (True, True)


def test_pids_sent_back_reach_real_processes(session):
    # A pid that made the trip Python -> node must address the same process.
    pid = session.rpc("erlang", "whereis", [Atom("code_server")])
    assert isinstance(pid, Pid)
    assert session.rpc("erlang", "is_process_alive", [pid]) is True
    info = session.rpc("erlang", "process_info", [pid, Atom("registered_name")])
    assert info == (Atom("registered_name"), Atom("code_server"))
