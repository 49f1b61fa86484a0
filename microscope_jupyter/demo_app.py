"""The bundled demo: a small Elixir app with a real bug, booted as a local node.

    s = mic.demo()                 # compile if needed, boot, attach
    s.demo.start_updates(50)       # WorkerA starts sending to WorkerB
    ...
    s.detach()                     # also stops the demo node

The app lives in ``examples/apps/demo`` (shipped in the package as
``microscope_jupyter/examples/apps/demo``, or ``$MICROSCOPE_DEMO_APP``). It is
built with plain ``mix compile`` into a cache directory, so the source tree
stays clean and an installed package needs no write access to itself.

Every node booted here (the demo, the example notebooks' apps, each
``mic.bisect`` step) is safe to leave to itself:

- Its cookie is never on a command line or in an environment, where ``ps``
  or ``/proc`` would show it: ``-setcookie``, ``-args_file`` and
  ``ERL_FLAGS`` all end up in the emulator's argv. The node gets a private
  home (a 0700 directory) whose ``.erlang.cookie`` (0400) the runtime reads
  at boot, before distribution starts; both are deleted as soon as the node
  is registered.
- Its distribution listens on 127.0.0.1 only, and it is named
  ``PREFIX_XXXX@127.0.0.1`` to match.
- It follows its owner: it inherits the read end of a pipe whose write end
  only this Python process holds, and a watchdog on the node halts it when
  that pipe reads end-of-file. The kernel closes the pipe however the owner
  dies (``kill -9`` included), so the node halts within moments, where
  ``atexit`` alone would never run.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import secrets
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .beam import epmd
from .beam.terms import Atom, Pid
from .errors import AttachError, MicroscopeError
from .package_data import hooks_dir as package_hooks_dir

__all__ = ["DemoNode", "boot_demo_node", "boot_app_node", "demo_app_dir", "fixed_demo_app_dir",
           "hooks_dir"]

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


# Distribution on the loopback interface only; the node's name says the same.
LOOPBACK = "127.0.0.1"
_LISTEN_ON_LOOPBACK = "-kernel inet_dist_use_interface {127,0,0,1}"

# Run first on the node (elixir -e, before Mix starts the app): halt when the
# owner's pipe (fd %d, inherited) reads end-of-file, or cannot be opened. The
# watchdog is node plumbing, not the app: registered by name and in kernel's
# group (as `user` is), so traces of "everything" and the app's tree leave it out.
_FOLLOW_OWNER = """
spawn(fn ->
  Process.register(self(), :microscope_owner_watchdog)
  {:group_leader, kernel} = Process.info(Process.whereis(:user), :group_leader)
  Process.group_leader(self(), kernel)
  Process.flag(:trap_exit, true)
  try do
    port = Port.open({:fd, %d, %d}, [:in, :eof, :binary])
    receive do
      {^port, :eof} -> :erlang.halt(0)
      {:EXIT, ^port, _} -> :erlang.halt(0)
    end
  rescue
    _ -> :erlang.halt(1)
  end
end)
"""


@dataclass
class DemoNode:
    """A running demo node. ``stop()`` kills it; it halts by itself when the
    Python process that booted it dies."""

    name: str
    cookie: str
    process: subprocess.Popen
    owner_pipe: int | None = None   # the write end of the pipe its watchdog reads
    home: Path | None = None        # its private home

    def __repr__(self) -> str:
        return f"<DemoNode {self.name} pid={self.process.pid}>"

    def stop(self) -> None:
        if self.owner_pipe is not None:
            os.close(self.owner_pipe)   # the watchdog halts it, should the kill below miss
            self.owner_pipe = None
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        if self.home is not None:
            shutil.rmtree(self.home, ignore_errors=True)
            self.home = None


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
    home, cookie_file = _private_home(cookie)
    # Mix keeps its archives under the real home, not the node's.
    env.setdefault("MIX_HOME", str(Path.home() / ".mix"))
    env["HOME"] = str(home)
    watched, owner_pipe = os.pipe()
    log = open(build / f"{alive}.log", "wb")
    try:
        process = subprocess.Popen(
            [elixir, "--name", f"{alive}@{LOOPBACK}", "--erl", _LISTEN_ON_LOOPBACK,
             "-e", _FOLLOW_OWNER % (watched, watched), "-S", mix, "run", "--no-compile",
             "--no-halt"],
            cwd=app, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True, pass_fds=(watched,))
    except BaseException:
        os.close(owner_pipe)
        shutil.rmtree(home, ignore_errors=True)
        raise
    finally:
        os.close(watched)
        log.close()
    node = DemoNode(f"{alive}@{LOOPBACK}", cookie, process, owner_pipe, home)
    atexit.register(node.stop)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            node.stop()
            raise AttachError(f"the node exited with {process.returncode}; see "
                              f"{build / (alive + '.log')}")
        try:
            if alive in epmd.names(LOOPBACK, timeout=1.0):
                # Read at boot, before the node registered: nothing stays on disk
                # (the home too, unless the node wrote there; stop() removes it then).
                cookie_file.unlink()
                with contextlib.suppress(OSError):
                    home.rmdir()
                return node
        except MicroscopeError:
            pass
        time.sleep(0.1)
    node.stop()
    raise AttachError(f"the node {alive} did not start within {timeout:g} s")


def _private_home(cookie: str) -> tuple[Path, Path]:
    """A home directory only this user can enter, holding ``.erlang.cookie``
    (0400), where the runtime looks for the cookie when none is on its
    command line."""
    home = Path(tempfile.mkdtemp(prefix="microscope-node-"))   # 0700
    cookie_file = home / ".erlang.cookie"
    fd = os.open(cookie_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o400)
    with os.fdopen(fd, "w") as out:
        out.write(cookie)
    return home, cookie_file


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


