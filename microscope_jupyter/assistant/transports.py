"""Streamable HTTP for assistants, from a notebook (``s.serve_mcp()``); stdio is
``microscope mcp`` (``cli``)."""

from __future__ import annotations

import datetime as _dt
import threading

from ..errors import MicroscopeError
from .engine import Assistant
from .tools import build_server

__all__ = ["HttpServer"]


class HttpServer:
    """The MCP server on streamable HTTP at 127.0.0.1, behind a bearer token.

    The token is in ``s.mcp.token`` (``self.token``) and nowhere else: never
    printed, and in no repr, log, audit record or saved file. ``stop()`` closes the port and ends the thread.
    """

    def __init__(self, assistant: Assistant, port: int = 0):
        import secrets

        import uvicorn

        self.assistant = assistant
        self.token = secrets.token_urlsafe(24)   # s.mcp.token; never printed, never in a repr
        app = _TokenGate(build_server(assistant).streamable_http_app(host="127.0.0.1"),
                         self.token)
        # log_config=None: uvicorn leaves the kernel's logging as it found it
        config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error",
                                lifespan="on", log_config=None)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="microscope-mcp",
                                        daemon=True)
        self._thread.start()
        deadline = _dt.datetime.now() + _dt.timedelta(seconds=10)
        while not self._server.started and _dt.datetime.now() < deadline:
            if not self._thread.is_alive():
                raise MicroscopeError("the MCP server did not start (is the port taken?)")
            threading.Event().wait(0.02)
        sockets = [s for server in self._server.servers for s in server.sockets]
        self.port = sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}/mcp"

    def approvals(self):
        """Approve / Deny buttons for the assistant's trace proposals (a widget)."""
        from ..widgets.approvals import ApprovalPanel

        return ApprovalPanel(self.assistant)

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)

    def __repr__(self) -> str:
        return f"<microscope MCP server {self.url} {'running' if self.running else 'stopped'}>"


class _TokenGate:
    """ASGI: a request without ``Authorization: Bearer <token>`` gets 401. The
    scheme is case-insensitive (RFC 9110: ``bearer`` and ``BEARER`` too); the token is not."""

    REFUSED = (b"a bearer token is required: send 'Authorization: Bearer <token>', the token "
               b"being s.mcp.token in the notebook that started this server")

    def __init__(self, app, token: str):
        self.app, self._expected = app, token.encode()

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            import hmac
            given = dict(scope.get("headers") or []).get(b"authorization", b"")
            scheme, _, token = given.strip().partition(b" ")
            if not (scheme.lower() == b"bearer"
                    and hmac.compare_digest(token.strip(), self._expected)):
                await send({"type": "http.response.start", "status": 401,
                            "headers": [(b"content-type", b"text/plain"),
                                        (b"www-authenticate", b"Bearer")]})
                await send({"type": "http.response.body", "body": self.REFUSED})
                return
        await self.app(scope, receive, send)
