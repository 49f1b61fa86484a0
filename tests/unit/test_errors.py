"""The error tree: documented, complete, and mixed with the right builtins."""

from __future__ import annotations

import inspect

import pytest

import microscope_jupyter as mic
from microscope_jupyter import errors


def test_every_public_error_is_in_the_tree_and_documented():
    doc = errors.__doc__
    for name in errors.__all__:
        cls = getattr(errors, name)
        assert issubclass(cls, errors.MicroscopeError)
        assert name in doc, f"{name} missing from the tree in errors.py's docstring"
    defined = {name for name, obj in vars(errors).items()
               if inspect.isclass(obj) and issubclass(obj, Exception)
               and obj.__module__ == errors.__name__}
    assert defined == set(errors.__all__)


@pytest.mark.parametrize("cls, builtin", [
    (errors.AttachError, ConnectionError),
    (errors.NodeDown, ConnectionError),
    (errors.RpcTimeout, TimeoutError),
    (errors.DecodeError, ValueError),
    (errors.EncodeError, TypeError),
])
def test_generic_handlers_still_catch(cls, builtin):
    assert issubclass(cls, builtin)


@pytest.mark.parametrize("name", ["@host", "demo@", ""])
def test_malformed_node_names_are_attach_errors(name):
    with pytest.raises(errors.AttachError, match="node name like"):
        mic.attach(name, cookie="x")


def _recorded():
    from fake_agent import A, B, FakeAgent
    from microscope_jupyter.saved import OfflineSession
    from microscope_jupyter.beam.terms import Atom
    from microscope_jupyter.store.event_store import EventStore

    store = EventStore()
    agent = FakeAgent(store, names=[(B, Atom("Elixir.Demo.WorkerB"))])
    agent.event("send", A, B, payload=1)
    agent.event("receive", B, payload=1)
    agent.flush()
    return OfflineSession(store, {}, None)


def _empty():
    from microscope_jupyter.saved import OfflineSession
    from microscope_jupyter.store.event_store import EventStore

    return OfflineSession(EventStore(), {}, None)


def _set_syntax(s):
    s.syntax = "lisp"


@pytest.mark.parametrize("action, error", [
    (lambda: _recorded().states("Nobody"), errors.QueryError),
    (lambda: _recorded().query.trace_message("{:nope}"), errors.QueryError),
    (lambda: _recorded().query.trace_message("{:a,"), errors.PatternError),
    (lambda: _recorded().time_travel().step(1, proc="nobody"), errors.QueryError),
    (lambda: _empty().time_travel().snapshot_at(0), errors.QueryError),
    (lambda: _recorded().expect("Demo.WorkerB", 42), errors.QueryError),
    (lambda: _set_syntax(_recorded()), errors.MicroscopeError),
    (lambda: _recorded().sql("select nope from nowhere"), errors.MicroscopeError),
    (lambda: mic.load("/nonexistent/recording"), errors.MicroscopeError),
    (lambda: _recorded().store.payload_bytes(99), errors.QueryError),
])
def test_no_lower_level_error_escapes_the_public_api(action, error):
    with pytest.raises(error) as info:
        action()
    assert isinstance(info.value, errors.MicroscopeError)
    assert "\n" not in str(info.value).strip()
