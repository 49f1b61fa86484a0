"""Where a node is and how to prove we may talk to it: its name and the cookie."""

from __future__ import annotations

import os
import socket
from pathlib import Path

from ..errors import AttachError, CookieMissing

__all__ = ["split_node_name", "resolve_cookie", "read_cookie_file"]


def split_node_name(node: str) -> tuple[str, str]:
    """``"demo@host"`` -> ``("demo", "host")``; a bare name means this host."""
    if "@" in node:
        alive, host = node.split("@", 1)
    else:
        alive, host = node, socket.gethostname().split(".")[0]
    if not alive or not host:
        raise AttachError(f"expected a node name like demo@localhost, got {node!r}")
    return alive, host


def read_cookie_file(path: str | Path) -> str:
    """The cookie in a file (``--cookie-file``); CookieMissing, one line, if it
    cannot be read or holds nothing. The message never carries the cookie."""
    path = Path(path).expanduser()
    try:
        text = path.read_text().strip()
    except OSError as exc:
        raise CookieMissing(f"cannot read the cookie file {path} ({exc.strerror})") from None
    if not text:
        raise CookieMissing(f"the cookie file {path} is empty")
    return text


def resolve_cookie(cookie: str | None) -> str:
    """Argument, then $MICROSCOPE_COOKIE, then ~/.erlang.cookie."""
    if cookie:
        return cookie
    env = os.environ.get("MICROSCOPE_COOKIE")
    if env:
        return env
    path = Path.home() / ".erlang.cookie"
    try:
        text = path.read_text().strip()
    except OSError:
        text = ""
    if text:
        return text
    raise CookieMissing("no cookie given: pass cookie=..., set MICROSCOPE_COOKIE, or create "
                        f"{path} with the node's cookie")
