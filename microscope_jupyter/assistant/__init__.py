"""MCP for AI assistants over the same engine (``pip install 'microscope-jupyter[mcp]'``).

    microscope mcp --node app@host              # stdio, for any MCP client
    handle = s.serve_mcp()                      # from a notebook: HTTP on 127.0.0.1, a token

See ``engine`` (approvals, ceilings, caps, the audit), ``table`` (what the
assistant can ask: one row per tool, each over the Session or Query method a
notebook calls), ``tools`` (the rows as MCP tools) and ``transports``.
"""

from .engine import Assistant, Ceilings, Proposal
from .tools import build_server
from .transports import HttpServer

__all__ = ["Assistant", "Ceilings", "Proposal", "build_server", "HttpServer"]
