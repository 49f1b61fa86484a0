"""The package builds whole and stands on its own: an sdist made from what a
fresh clone holds carries every source and the prebuilt agent and bundles; a
wheel built from it with neither erlc nor npm on the PATH, installed into a
fresh venv outside the checkout, boots the demo, traces it and runs the
quickstart with nothing from here. A build with neither the tools nor the
prebuilt parts stops with one line.

The fresh venv takes its third-party dependencies from the test venv's
site-packages through a .pth line (the checkout's own editable install is not
on it: a directory added by a .pth line has its own .pth files ignored), so
the test needs no download beyond the build's own setuptools.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import zipfile
from pathlib import Path

import pytest

CHECKOUT = Path(__file__).resolve().parents[2]


# What a wheel must carry besides Python: the agent and one bundle per widget entry.
BUILT_PARTS = ["microscope_jupyter/agent/microscope_agent.beam",
               *(f"microscope_jupyter/widgets/static/{name}.js" for name in
                 ("supervision_tree", "sequence_diagram", "time_travel", "timeline",
                  "process_graph", "source_view", "report_runtime"))]
SOURCES = ["elixir_hooks/agent/microscope_agent.erl", "elixir_hooks/mix.exs",
           "elixir_hooks/lib/beam_microscope.ex", "js/package.json", "js/package-lock.json",
           "js/build.mjs", "js/src/sequence_diagram.js", "js/src/common.js",
           "examples/apps/demo/mix.exs", "examples/apps/demo/lib/demo/worker_b.ex",
           "examples/apps/demo/fixed/lib/demo/worker_b.ex", "examples/notebooks/01_quickstart.ipynb"]


def clean_copy(to: Path) -> Path:
    """What a fresh clone holds: tracked files and new ones git does not ignore
    (so no agent .beam, no bundles, no node_modules)."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            cwd=CHECKOUT, check=True, capture_output=True).stdout
    for name in filter(None, listed.decode().split("\0")):
        source = CHECKOUT / name
        if source.is_file():
            (to / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, to / name)
    return to


def path_without(tmp: Path, *tools: str) -> str:
    """A PATH with every program of this one but ``tools``, as on a machine without them."""
    folder = tmp / ("bin-without-" + "-".join(tools))
    folder.mkdir()
    for directory in os.environ["PATH"].split(os.pathsep):
        for program in Path(directory).glob("*") if Path(directory).is_dir() else ():
            link = folder / program.name
            if program.name not in tools and not link.exists() and not link.is_symlink():
                link.symlink_to(program)
    assert all(shutil.which(tool, path=str(folder)) is None for tool in tools)
    return str(folder)


@pytest.fixture(scope="module")
def sdist(tmp_path_factory):
    """The sdist of a fresh clone, made with erlc and npm at hand (npm's packages
    come from the checkout's js/node_modules, as npm ci would fetch them)."""
    tmp = tmp_path_factory.mktemp("sdist")
    tree = clean_copy(tmp / "clone")
    if (CHECKOUT / "js" / "node_modules").is_dir():
        (tree / "js" / "node_modules").symlink_to(CHECKOUT / "js" / "node_modules")
    built = subprocess.run([sys.executable, "-m", "build", "--sdist", "--outdir", str(tmp / "dist"),
                            str(tree)], capture_output=True, text=True)
    assert built.returncode == 0, built.stdout[-2000:] + built.stderr[-2000:]
    return next((tmp / "dist").glob("microscope_jupyter-*.tar.gz"))


@pytest.fixture(scope="module")
def wheel(sdist, tmp_path_factory):
    """A wheel built from the sdist with neither erlc nor npm nor node on the PATH."""
    tmp = tmp_path_factory.mktemp("wheel-from-sdist")
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w",
                            str(tmp), str(sdist)], capture_output=True, text=True,
                           env={**os.environ, "PATH": path_without(tmp, "erlc", "npm", "node")})
    assert built.returncode == 0, built.stdout[-2000:] + built.stderr[-2000:]
    return next(tmp.glob("microscope_jupyter-*.whl"))


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory):
    """(python, microscope script, env) of a fresh venv with only the wheel installed."""
    tmp = tmp_path_factory.mktemp("wheel")
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()
    Path(site, "_test_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([python, "-m", "pip", "install", "-q", "--no-deps", str(wheel)], check=True,
                   capture_output=True)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "MICROSCOPE_DEMO_APP")}
    env["XDG_CACHE_HOME"] = str(tmp / "cache")   # the demo is compiled afresh
    # Data files the dependencies install under <venv>/share/jupyter (nbconvert's
    # templates), which a real install of them would have put in the fresh venv.
    env["JUPYTER_PATH"] = str(Path(sys.prefix) / "share" / "jupyter")
    work = tmp / "elsewhere"
    work.mkdir()
    return python, venv / "bin" / "microscope", env, work


def test_the_installed_package_comes_from_the_wheel_not_the_checkout(installed):
    python, _, env, work = installed
    where = subprocess.run([python, "-c", "import microscope_jupyter, microscope; "
                                          "print(microscope_jupyter.__file__)"],
                           cwd=work, env=env, check=True, capture_output=True, text=True)
    assert not where.stdout.strip().startswith(str(CHECKOUT))


def test_the_sdist_holds_the_sources_and_the_prebuilt_parts(sdist):
    with tarfile.open(sdist) as tar:
        names = {name.split("/", 1)[1] for name in tar.getnames() if "/" in name}
    assert set(SOURCES) <= names, sorted(set(SOURCES) - names)
    assert set(BUILT_PARTS) <= names, sorted(set(BUILT_PARTS) - names)


def test_the_wheel_built_without_erlc_or_npm_ships_the_prebuilt_agent_and_bundles(wheel):
    with zipfile.ZipFile(wheel) as whl:
        names = set(whl.namelist())
    assert set(BUILT_PARTS) <= names, sorted(set(BUILT_PARTS) - names)
    assert "microscope_jupyter/examples/apps/demo/mix.exs" in names
    assert "microscope_jupyter/elixir_hooks/mix.exs" in names


@pytest.mark.parametrize("hidden, missing", [(("erlc", "npm", "node"), "erlc is not on the PATH"),
                                             (("npm", "node"), "npm and node are not on the PATH")])
def test_a_build_without_the_tools_or_the_prebuilt_parts_fails_in_one_line(tmp_path, hidden,
                                                                           missing):
    tree = clean_copy(tmp_path / "clone")
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w",
                            str(tmp_path / "dist"), str(tree)], capture_output=True, text=True,
                           env={**os.environ, "PATH": path_without(tmp_path, *hidden)})
    assert built.returncode != 0
    assert not list((tmp_path / "dist").glob("*.whl"))
    ours = [line.strip() for line in (built.stdout + built.stderr).splitlines()
            if line.strip().startswith("error: cannot")]
    assert len(ours) == 1 and missing in ours[0] and "install" in ours[0], built.stderr[-2000:]


def test_mic_demo_boots_and_traces_from_the_installed_package(installed):
    python, _, env, work = installed
    script = ("import time, microscope_jupyter as mic\n"
              "s = mic.demo()\n"
              "print(s.node_info()['elixir_version'] is not None)\n"
              "rec = s.trace('Demo.WorkerB', max_events=1000)\n"
              "s.demo.start_updates(10)\n"
              "deadline = time.monotonic() + 30\n"
              "while not (s.events.kind == 'receive').any() and time.monotonic() < deadline:\n"
              "    time.sleep(0.05)\n"
              "rec.stop()\n"
              "print('received', (s.events.kind == 'receive').sum())\n"
              "s.detach()\n")
    result = subprocess.run([python, "-c", script], cwd=work, env=env, capture_output=True,
                            text=True, timeout=240)
    assert result.returncode == 0, result.stderr
    ready, received = result.stdout.strip().splitlines()[-2:]
    assert ready == "True"
    assert int(received.split()[1]) > 0


def test_microscope_demo_runs_the_shipped_quickstart(installed):
    _, microscope, env, work = installed
    result = subprocess.run([microscope, "demo", "--out", str(work / "out")], cwd=work, env=env,
                            capture_output=True, text=True, timeout=480)
    assert result.returncode == 0, result.stderr[-2000:]
    executed = json.loads((work / "out" / "01_quickstart.ipynb").read_text())
    errors = [o for c in executed["cells"] for o in c.get("outputs", [])
              if o.get("output_type") == "error"]
    assert not errors
    assert "lost_message" in result.stdout      # the story's finding, printed at the end
    answer = result.stdout.split("Why, in one paragraph (s.explain):", 1)[1]
    assert "Demo.WorkerA" in answer and "worker_b" in answer   # the stale pid and where it is kept
    assert (work / "out" / "01_quickstart.html").stat().st_size > 10_000


def test_the_wheel_ships_py_typed_and_the_license(installed):
    python, _, env, work = installed
    where = subprocess.run([python, "-c", "import importlib.metadata as m, microscope_jupyter as p;"
                            "print(p.__file__); print(m.distribution('microscope-jupyter')"
                            ".read_text('licenses/LICENSE')[:200])"],
                           cwd=work, env=env, check=True, capture_output=True, text=True)
    package_file, license_text = where.stdout.split("\n", 1)
    assert (Path(package_file).parent / "py.typed").exists()
    assert "Apache License" in license_text and "Version 2.0, January 2004" in license_text


def test_microscope_demo_twice_into_one_folder_keeps_one_recording(installed):
    """Each run boots its own demo node (its own name): the second run's recording
    replaces the first's whole, never two nodes' events in one recording."""
    import microscope_jupyter as mic

    _, microscope, env, work = installed
    for _ in range(2):
        result = subprocess.run([microscope, "demo", "--out", str(work / "twice")], cwd=work,
                                env=env, capture_output=True, text=True, timeout=480)
        assert result.returncode == 0, result.stderr[-2000:]
    recording = work / "twice" / "quickstart-recording"
    assert len(list((recording / "events").iterdir())) == 1
    loaded = mic.load(recording)
    assert len(loaded.events) == json.loads((recording / "metadata.json").read_text())["events"]
    assert [p.name for p in (work / "twice").iterdir() if p.name.startswith(".")] == []
