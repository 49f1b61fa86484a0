"""IPython magics: thin routers over the Session API.

    %load_ext microscope
    s = %beam_attach demo@127.0.0.1 --cookie-file ~/.erlang.cookie
    %beam_processes
    %beam_detach

Mistakes raise ``UsageError``, so IPython shows one line and no traceback.
There is deliberately no ``--cookie VALUE`` option: a cookie typed into a
cell would be saved in the notebook. Use ``--cookie-file``,
``$MICROSCOPE_COOKIE`` or ``~/.erlang.cookie``.
"""

from __future__ import annotations

import shlex
from pathlib import Path

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_magic, magics_class

from .errors import MicroscopeError
from .session import Session, attach

__all__ = ["MicroscopeMagics", "load_ipython_extension", "unload_ipython_extension",
           "current_session"]

_state: dict[str, Session | None] = {"session": None}


def current_session() -> Session:
    session = _state["session"]
    if session is None or not session.attached:
        raise UsageError("there is no attached node. Attach with %beam_attach NODE@HOST "
                         "and try again")
    return session


def _parse_attach(line: str) -> tuple[str, str | None, float | None]:
    try:
        words = shlex.split(line)
    except ValueError as exc:
        raise UsageError(f"could not parse the arguments ({exc})") from None
    node, cookie_file, ticktime = None, None, None
    it = iter(words)
    for word in it:
        if word == "--cookie-file":
            cookie_file = next(it, None)
            if cookie_file is None:
                raise UsageError("--cookie-file needs a path, e.g. --cookie-file ~/.erlang.cookie")
        elif word == "--net-ticktime":
            value = next(it, None)
            try:
                ticktime = float(value or "")
            except ValueError:
                raise UsageError(f"--net-ticktime needs seconds, got {value!r}") from None
        elif word == "--cookie":
            raise UsageError("a cookie typed into a cell is saved with the notebook; use "
                             "--cookie-file PATH, $MICROSCOPE_COOKIE or ~/.erlang.cookie")
        elif word.startswith("-"):
            raise UsageError(f"unknown option {word}; %beam_attach takes NODE@HOST "
                             "[--cookie-file PATH] [--net-ticktime SECONDS]")
        elif node is None:
            node = word
        else:
            raise UsageError(f"%beam_attach takes one node name, got {node!r} and {word!r}")
    if node is None:
        raise UsageError("name the node to attach to, e.g. %beam_attach demo@127.0.0.1")
    cookie = None
    if cookie_file is not None:
        path = Path(cookie_file).expanduser()
        try:
            cookie = path.read_text().strip()
        except OSError as exc:
            raise UsageError(f"cannot read the cookie file {path} ({exc.strerror})") from None
        if not cookie:
            raise UsageError(f"the cookie file {path} is empty")
    return node, cookie, ticktime


@magics_class
class MicroscopeMagics(Magics):
    @line_magic
    def beam_attach(self, line: str) -> Session:
        """%beam_attach NODE@HOST [--cookie-file PATH] [--net-ticktime SECONDS]"""
        node, cookie, ticktime = _parse_attach(line)
        previous = _state["session"]
        try:
            session = attach(node, cookie, net_ticktime=ticktime)
        except MicroscopeError as exc:
            raise UsageError(str(exc)) from None
        if previous is not None:
            previous.detach()
        _state["session"] = session
        return session

    @line_magic
    def beam_detach(self, line: str) -> None:
        """%beam_detach: disconnect from the attached node."""
        session = _state["session"]
        if session is None:
            raise UsageError("there is no attached node to detach from")
        session.detach()
        _state["session"] = None
        print(f"Detached from {session.node}.")

    @line_magic
    def beam_processes(self, line: str):
        """%beam_processes: the attached node's processes as a DataFrame."""
        try:
            return current_session().processes()
        except MicroscopeError as exc:
            raise UsageError(str(exc)) from None


def load_ipython_extension(ipython) -> None:
    ipython.register_magics(MicroscopeMagics)


def unload_ipython_extension(ipython) -> None:
    session = _state["session"]
    if session is not None:
        session.detach()
        _state["session"] = None
