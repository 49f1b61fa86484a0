"""What browser tests share: a JupyterLab server of their own, a notebook's
kernel to ask, and a page opened with the network refused."""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest


@contextlib.contextmanager
def jupyterlab(work: Path, *args: str, **env_extra: str):
    """A JupyterLab server on a free port serving ``work``, with its own config
    and settings; yields {url, token, dir}. ``args``: extra server options."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    token = secrets.token_hex(16)
    env = dict(os.environ, JUPYTER_CONFIG_DIR=str(work / ".config"),
               JUPYTER_DATA_DIR=str(Path(sys.prefix) / "share" / "jupyter"), **env_extra)
    log = open(work / "lab.log", "wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root", f"--port={port}",
         "--ServerApp.ip=127.0.0.1", f"--IdentityProvider.token={token}",
         f"--ServerApp.root_dir={work}", "--LabApp.news_url=None",
         "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
         "--LabApp.expose_app_in_browser=True", f"--LabApp.workspaces_dir={work / 'ws'}",
         f"--LabApp.user_settings_dir={work / 'settings'}", *args],
        cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=1)
            break
        except OSError:
            time.sleep(0.3)
    else:
        proc.kill()
        pytest.fail("JupyterLab did not start:\n" + (work / "lab.log").read_text()[-3000:])
    try:
        yield {"url": url, "token": token, "dir": work}
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def page_error(error) -> str | None:
    """A page's uncaught error as text, or None for JupyterLab's own known one:
    its windowed notebook detaching a cell node already gone, when cells are
    added and views split quickly (jupyterlab/jupyterlab#15415; the stack is all
    NotebookWindowedLayout, none of it ours)."""
    stack = getattr(error, "stack", "") or ""
    if "removeChild" in str(error) and "NotebookWindowedLayout" in stack:
        return None
    return str(error)


def kernel(page, code: str) -> str:
    """Run code in the kernel of the notebook the page shows; returns what it printed."""
    return page.evaluate("""async (code) => {
        const kernel = window.jupyterapp.shell.currentWidget.sessionContext.session.kernel;
        let out = '';
        const future = kernel.requestExecute({ code });
        future.onIOPub = (msg) => {
            if (msg.header.msg_type === 'stream') out += msg.content.text;
            if (msg.header.msg_type === 'error') out += 'ERROR ' + msg.content.evalue;
        };
        await future.done;
        return out;
    }""", code)


def offline_page(browser, path: Path, scripts: bool = True):
    """``path`` opened with every request that is not the file itself refused:
    (context, page, refused URLs); ``page.errors`` holds uncaught exceptions,
    ``page.console`` the console's errors and warnings."""
    context = browser.new_context(viewport={"width": 1280, "height": 900},
                                  java_script_enabled=scripts)
    refused: list[str] = []

    def offline(route):
        if route.request.url.startswith("file://"):
            return route.continue_()
        refused.append(route.request.url)
        return route.abort()

    context.route("**/*", offline)
    page = context.new_page()
    page.errors, page.console = [], []
    page.on("pageerror", lambda e: page.errors.append(str(e)))
    page.on("console", lambda m: page.console.append(m.text)
            if m.type in ("error", "warning") else None)
    page.goto(path.as_uri())
    return context, page, refused
