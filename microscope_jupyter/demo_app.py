"""The bundled demo: a small Elixir app with a real bug, booted as a local node.

    s = mic.demo()                 # compile if needed, boot, attach
    s.demo.start_updates(50)       # WorkerA starts sending to WorkerB
    ...
    s.detach()                     # also stops the demo node

The app lives in ``examples/apps/demo`` (shipped in the package as
``microscope_jupyter/examples/apps/demo``, or ``$MICROSCOPE_DEMO_APP``). It is
built with plain ``mix compile`` into a cache directory, so the source tree
stays clean and an installed package needs no write access to itself.
"""

from __future__ import annotations

import atexit
import os
import secrets
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .beam import epmd
from .beam.terms import Atom, Pid
from .errors import AttachError, MicroscopeError
from .package_data import hooks_dir as package_hooks_dir

__all__ = ["DemoNode", "boot_demo_node", "boot_app_node", "demo_app_dir", "fixed_demo_app_dir",
           "hooks_dir", "checkout_commit"]

_HERE = Path(__file__).resolve().parent


def demo_app_dir() -> Path:
    """``$MICROSCOPE_DEMO_APP``, else the copy an installed package ships, else a checkout's."""
    env = os.environ.get("MICROSCOPE_DEMO_APP")
    candidates = [Path(env)] if env else []
    candidates += [_HERE / "examples" / "apps" / "demo",           # installed wheel
                   _HERE.parent / "examples" / "apps" / "demo",    # source checkout
                   Path.cwd() / "examples" / "apps" / "demo"]
    for path in candidates:
        if (path / "mix.exs").exists():
            return path
    raise AttachError("the demo app was not found: set MICROSCOPE_DEMO_APP to the "
                      "examples/apps/demo folder of a microscope-jupyter checkout")


def hooks_dir() -> Path:
    """The Elixir hooks package the demo depends on by path (``package_data.hooks_dir``)."""
    found = package_hooks_dir()
    if found is None:
        raise AttachError("the Elixir hooks package was not found: set BEAM_MICROSCOPE_HOOKS to "
                          "the elixir_hooks folder of a microscope-jupyter checkout")
    return found


def _cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "microscope"


def _build_dir(app: Path) -> Path:
    """Where a Mix app is built: the cache, one folder per app (``demo_build``)."""
    return _cache_dir() / f"{app.name}_build"


@dataclass
class DemoNode:
    """A running demo node. ``stop()`` kills it."""

    name: str
    cookie: str
    process: subprocess.Popen

    def __repr__(self) -> str:
        return f"<DemoNode {self.name} pid={self.process.pid}>"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)


def boot_demo_node(timeout: float = 120.0, fixed: bool = False) -> DemoNode:
    """Compile the demo app if needed and boot it as ``microscope_demo_XXXX@host``;
    ``fixed`` boots the build with both bugs fixed (``examples/apps/demo/fixed``)."""
    if fixed:
        return boot_app_node(fixed_demo_app_dir(), "microscope_demo_fixed", timeout)
    return boot_app_node(demo_app_dir(), "microscope_demo", timeout)


def fixed_demo_app_dir() -> Path:
    """The demo with its fix: a copy (in the cache) whose ``lib`` has the files
    of ``fixed/lib`` laid over it. WorkerA sends to the name; WorkerB takes
    the checkpoint."""
    source = demo_app_dir()
    app = _cache_dir() / "demo_fixed"
    app.mkdir(parents=True, exist_ok=True)
    for folder, pattern in ((source, "mix.exs"), (source, "lib/**/*.ex"),
                            (source / "fixed", "lib/**/*.ex")):
        for file in folder.glob(pattern):
            target = app / file.relative_to(folder)
            target.parent.mkdir(parents=True, exist_ok=True)
            if not target.exists() or target.read_bytes() != file.read_bytes():
                target.write_bytes(file.read_bytes())   # unchanged files keep their mtime
    return app


def boot_app_node(app: Path, prefix: str, timeout: float = 120.0) -> DemoNode:
    """Compile a Mix app (no dependencies) if needed and boot it as
    ``PREFIX_XXXX@host`` with ``mix run --no-halt``; the example notebooks'
    apps boot this way."""
    mix = shutil.which("mix")
    elixir = shutil.which("elixir")
    if mix is None or elixir is None:
        raise AttachError("Elixir is not installed: run `apt-get install -y elixir` (as root) "
                          "and try again")
    app = Path(app)
    build = _build_dir(app)
    build.mkdir(parents=True, exist_ok=True)
    # the demo depends on the hooks package by path; apps that do not ignore it
    env = dict(os.environ, MIX_BUILD_PATH=str(build), MIX_ENV="dev",
               BEAM_MICROSCOPE_HOOKS=str(hooks_dir()))
    built = subprocess.run([mix, "compile"], cwd=app, env=env, capture_output=True, text=True,
                           timeout=timeout)
    if built.returncode != 0:
        raise AttachError(f"the app in {app} did not compile:\n{built.stdout}{built.stderr}")
    alive = f"{prefix}_{secrets.token_hex(3)}"
    cookie = secrets.token_hex(16)
    host = socket.gethostname().split(".")[0]
    log = open(build / f"{alive}.log", "wb")
    process = subprocess.Popen(
        [elixir, "--sname", alive, "--cookie", cookie, "-S", mix, "run", "--no-compile",
         "--no-halt"],
        cwd=app, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        start_new_session=True)
    log.close()
    node = DemoNode(f"{alive}@{host}", cookie, process)
    atexit.register(node.stop)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AttachError(f"the node exited with {process.returncode}; see "
                              f"{build / (alive + '.log')}")
        try:
            if alive in epmd.names(host, timeout=1.0):
                return node
        except MicroscopeError:
            pass
        time.sleep(0.1)
    node.stop()
    raise AttachError(f"the node {alive} did not start within {timeout:g} s")


class DemoControls:
    """Drive the demo scenario from Python: ``s.demo.start_updates(50)``."""

    def __init__(self, session: Any):
        self._session = session

    def start_updates(self, interval_ms: int = 100) -> None:
        self._session.rpc("Elixir.Demo", "start_updates", [interval_ms])

    def reset(self) -> None:
        """Restart the demo app: fresh workers, counters at zero."""
        self.wait_for_app()  # a just-booted node answers before Mix has loaded the app
        self._session.rpc("Elixir.Demo", "reset", [])
        self.wait_for_app()

    def stop_updates(self) -> None:
        self._session.rpc("Elixir.Demo", "stop_updates", [])

    def stats(self) -> dict:
        return {str(k): v for k, v in self._session.rpc("Elixir.Demo.Stats", "get", []).items()}

    def wait_for_app(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if isinstance(self._session.rpc("erlang", "whereis", [Atom("Elixir.Demo.WorkerA")]), Pid):
                return
            time.sleep(0.1)
        raise AttachError("the demo app did not start its workers in time")


def checkout_commit(source: str | None) -> str | None:
    """The git commit of the checkout a source file is in (``+dirty`` when the
    file has uncommitted changes); None when it is in none on this machine."""
    if not source or not Path(source).exists():
        return None
    folder = str(Path(source).parent)
    try:
        head = subprocess.run(["git", "-C", folder, "rev-parse", "HEAD"], capture_output=True,
                              text=True, timeout=5)
        dirty = subprocess.run(["git", "-C", folder, "status", "--porcelain", "--", source],
                               capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    commit = head.stdout.strip() if head.returncode == 0 else None
    return commit + "+dirty" if commit and dirty.stdout.strip() else commit

