"""A JupyterLab server for browser tests: its own config, settings and port."""

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
