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
