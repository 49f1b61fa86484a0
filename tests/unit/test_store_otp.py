"""OTP message shapes, from terms and from their encoded bytes."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from microscope_jupyter.store.otp import is_reply, may_be_reply, message_kind
from microscope_jupyter.beam.etf import encode
from microscope_jupyter.beam.terms import Atom, ImproperList, Pid, Reference
from strategies import atoms, terms

REF = Reference(Atom("n@h"), 1, (1, 2, 3))
PID = Pid(Atom("n@h"), 1, 0, 1)
ALIAS = ImproperList((Atom("alias"),), REF)

CASES = [
    ((Atom("$gen_call"), (PID, ALIAS), Atom("get")), "call", False),
    ((Atom("$gen_cast"), Atom("reset")), "cast", False),
    ((ALIAS, 42), "reply", True),
    ((REF, Atom("ok")), "reply", True),
    ((Atom("io_reply"), REF, Atom("ok")), "service_reply", True),
    ((Atom("code_server"), Atom("ok")), "service_reply", True),
    ((Atom("update"), 1), "info", False),
    ((Atom("ping"), PID, 3), "info", False),
    (Atom("boom"), "info", False),
    ([1, 2], "info", False),
    ((REF, 1, 2, 3), "reply", False),   # reply-tagged, but no reply has four elements
]


def test_kinds_and_replies():
    for term, kind, reply in CASES:
        assert message_kind(term) == kind, term
        assert is_reply(term) is reply, term
        assert may_be_reply(encode(term)) or not reply, term


refs = st.builds(lambda node, ids: Reference(Atom(node + "@h"), 1, ids),
                atoms.filter(lambda a: "@" not in a and a), st.tuples(*[st.integers(0, 2**32 - 1)] * 3))
replies = st.one_of(
    st.tuples(refs, terms),
    st.tuples(refs.map(lambda r: ImproperList((Atom("alias"),), r)), terms),
    st.tuples(st.sampled_from([Atom("io_reply"), Atom("code_server"), Atom("io_request")]), terms),
    st.tuples(st.sampled_from([Atom("io_reply"), Atom("io_request")]), refs, terms),
)


@given(replies)
def test_the_byte_look_never_misses_a_reply(term):
    # may_be_reply may say "maybe" too often, never "no" to a reply.
    assert is_reply(term)
    assert may_be_reply(encode(term))


@given(terms)
def test_any_term_has_a_kind(term):
    # Messages are anything: an unhashable head such as {[], x} once raised here.
    assert message_kind(term) in ("call", "cast", "reply", "service_reply", "info")
    assert isinstance(is_reply(term), bool)
    assert isinstance(may_be_reply(encode(term)), bool)
    assert message_kind((term,) + (1,)) in ("call", "cast", "reply", "service_reply", "info")


def test_a_calls_tag_and_its_replys_tag_are_the_same_bytes():
    from microscope_jupyter.beam.etf import encode
    from microscope_jupyter.beam.terms import ImproperList, Pid, Reference
    from microscope_jupyter.store.otp import call_tag_bytes, reply_tag_bytes

    node = Atom("app@host")
    tags = [Reference(node, 3, (1, 2, 3)),                                   # before OTP 24
            ImproperList([Atom("alias")], Reference(node, 3, (4, 5, 6)))]    # an alias since
    for tag in tags:
        call = encode((Atom("$gen_call"), (Pid(node, 1, 0, 3), tag), {Atom("q"): [1, 2.5, "x"]}))
        assert call_tag_bytes(call) == reply_tag_bytes(encode((tag, Atom("ok")))) \
            == encode(tag)[1:]
    assert call_tag_bytes(encode((Atom("$gen_cast"), 1))) is None
    assert reply_tag_bytes(encode((Atom("ok"), 1, 2))) is None


# -- a transition's heading read off its bytes agrees with the decoded one

from hypothesis import assume, given, settings, strategies as st  # noqa: E402

from microscope_jupyter.beam.etf import decode, encode  # noqa: E402
from microscope_jupyter.beam.terms import Pid, Reference  # noqa: E402
from microscope_jupyter.store.otp import (message_shape, payload_shape, state_heading,  # noqa: E402
                                          transition)

_ATOMS = st.sampled_from([Atom(a) for a in ("get", "put", "tick", "timeout", "ok", "état",
                                            "$gen_cast", "$gen_call", "continue")])
_LEAVES = st.one_of(_ATOMS, st.integers(-2**40, 2**40), st.binary(max_size=8),
                    st.floats(allow_nan=False, allow_infinity=False))
_TERMS = st.recursive(_LEAVES, lambda kids: st.one_of(
    st.lists(kids, max_size=3).map(tuple), st.lists(kids, max_size=3),
    st.dictionaries(_ATOMS, kids, max_size=2)), max_leaves=6)
_FROM = (Pid(Atom("n@h"), 7, 0, 1), Reference(Atom("n@h"), 1, (1, 2, 3)))
_MESSAGES = st.one_of(
    _TERMS,
    _TERMS.map(lambda r: (Atom("$gen_call"), _FROM, r)),
    _TERMS.map(lambda r: (Atom("$gen_cast"), r)),
    _TERMS.map(lambda r: (Atom("continue"), r)),
    st.tuples(st.sampled_from([Atom("cast"), Atom("info"), (Atom("call"), _FROM),
                               Atom("state_timeout")]), _TERMS))


@settings(max_examples=400, deadline=None)
@given(_MESSAGES, st.sampled_from(["gen_server", "gen_statem"]), _TERMS)
def test_state_heading_reads_what_decoding_would(message, kind, state):
    payload = encode((message, state, state, Atom("noreply"), Atom(kind)))
    decoded = transition(decode(payload))
    expected = (decoded["callback"], message_shape(decoded["message"]))
    assert state_heading(payload, kind == "gen_statem") == expected


@settings(max_examples=400, deadline=None)
@given(_MESSAGES)
def test_payload_shape_reads_what_decoding_would(message):
    # (as state_heading: a request that is itself headed by $gen_call or $gen_cast
    # is unwrapped twice; no OTP message is one)
    inner = message[-1] if isinstance(message, tuple) and message else None
    assume(not (isinstance(inner, tuple) and inner and inner[0] in _GEN and message[0] in _GEN))
    assert payload_shape(encode(message)) == message_shape(decode(encode(message)))


_GEN = (Atom("$gen_call"), Atom("$gen_cast"))
