"""What analysis may ask a live node, and nothing more: ``Facts.live``.

A live session plugs a ``NodePort`` into its facts; a saved session and a
cluster have none, and every analysis answers from the recording alone.
"""

from __future__ import annotations

from typing import Any

from .beam.node import RemoteNode
from .beam.terms import Pid
from .errors import MicroscopeError
from .render.names import erlang_module_name

__all__ = ["NodePort"]

class NodePort:
    """The live lookups analysis may make of an attached node (``Facts.live``)."""

    def __init__(self, remote: RemoteNode):
        self._remote = remote

    def holder(self, proc: Any) -> str | None:
        """The pid that holds name ``proc`` on the node now (or ``proc`` itself,
        a pid, if it is alive); None when none does or the node is gone.
        Five seconds at most: analysis waits on it."""
        if not self._remote.alive:
            return None
        text = str(proc)
        if text.startswith("<"):
            source = "P = list_to_pid(binary_to_list(Name)), is_process_alive(P) andalso P."
        else:
            # Only an atom the node already has can name a process: none is created.
            source = ("try whereis(binary_to_existing_atom(Name, utf8)) of "
                      "undefined -> false; P -> P catch error:badarg -> false end.")
        name = text if text.startswith("<") else erlang_module_name(text)
        try:
            found = self._remote.eval_erlang(source, {"Name": name}, 5)
        except MicroscopeError:
            return None
        return str(found) if isinstance(found, Pid) else None

