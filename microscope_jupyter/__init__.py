"""BEAM Microscope for Jupyter: attach to a live Elixir/Erlang node and look inside.

    import microscope_jupyter as mic
    s = mic.attach("demo@127.0.0.1")
    s.processes()

In IPython or Jupyter: ``%load_ext microscope`` then ``%beam_attach demo@127.0.0.1``.
"""

from __future__ import annotations

from . import errors
from .beam.terms import Atom
from .session_base import compare
from .saved import OfflineSession, load
from .session import Session, attach, demo
from .cluster import Cluster, attach_cluster
from .bisection import bisect
from .package_data import VERSION as __version__

__all__ = ["attach", "attach_cluster", "demo", "load", "compare", "bisect", "flight_recorders",
           "Session", "Cluster", "OfflineSession", "Atom", "errors", "load_ipython_extension"]


def flight_recorders(node, cookie=None, **attach_options):
    """Every flight recorder on ``node`` (a Session, or a node name to attach to
    for the question), whichever session started it: a DataFrame."""
    if isinstance(node, Session):
        return node.flight_recorders()
    with attach(node, cookie, **attach_options) as session:
        return session.flight_recorders()


def __dir__():
    # Importing the package imports its rooms (beam, store, analysis...), which
    # Python sets as attributes; what a user may rely on is __all__.
    return sorted(__all__ + ["__version__"])


def __getattr__(name):
    # `mic.widgets` without importing anywidget for people who never use it.
    if name == "widgets":
        import importlib

        return importlib.import_module(".widgets", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def load_ipython_extension(ipython):  # pragma: no cover - exercised via tests/test_magics.py
    # Imported lazily so `import microscope_jupyter` never pulls in IPython.
    from .magics import load_ipython_extension as _load

    _load(ipython)


def unload_ipython_extension(ipython):
    from .magics import unload_ipython_extension as _unload

    _unload(ipython)
