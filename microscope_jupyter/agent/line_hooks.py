"""Whether ``lines=True`` can record anything on a node: line events come only
from ``BeamMicroscope.inspect_line`` (the Elixir hooks package), and most
nodes have no such module. A trace that would record none says so once in its
status, and once per connection in the log, at INFO: not having the package
is the usual case, not a fault.

    rec = s.trace()                 # on a node without the package
    rec.status()["notes"]           # ['app@host has no BeamMicroscope module, ...']
"""

from __future__ import annotations

import logging
import weakref

from ..beam.node import RemoteNode
from ..beam.terms import Atom
from ..errors import MicroscopeError
from ..package_data import hooks_dir
from .controller import Recording

__all__ = ["note_missing_line_hooks"]

log = logging.getLogger(__name__)

HOOKS_MODULE = Atom("Elixir.BeamMicroscope")
_TOLD: "weakref.WeakSet[RemoteNode]" = weakref.WeakSet()   # connections already logged to


def note_missing_line_hooks(remote: RemoteNode, recording: Recording) -> None:
    """One rpc: ``code:which`` finds the module loaded or on the code path (an app
    compiled with the package has it, whether or not anything called it yet)."""
    if not recording.spec.lines:
        return
    try:
        found = remote.rpc("code", "which", [HOOKS_MODULE], 5)
    except MicroscopeError:   # a question for a note: it never fails a trace
        return
    if found != Atom("non_existing"):
        return
    path = hooks_dir() or ".../elixir_hooks"
    note = (f"{remote.name} has no BeamMicroscope module, so lines=True records no line events; "
            f'to record them, add {{:beam_microscope, path: "{path}"}} to the app\'s deps '
            "and call BeamMicroscope.inspect_line(label, binding())")
    recording.notes.append(note)
    if remote not in _TOLD:
        _TOLD.add(remote)
        log.info(note)
