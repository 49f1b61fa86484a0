"""The wheel stands on its own: built, installed into a fresh venv outside the
checkout, it boots the demo and runs the quickstart with nothing from here.

The fresh venv takes its third-party dependencies from the test venv's
site-packages through a .pth line (the checkout's own editable install is not
on it: a directory added by a .pth line has its own .pth files ignored), so
the test needs no download beyond the build's own setuptools.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

CHECKOUT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(python, microscope script, env) of a fresh venv with only the wheel installed."""
    tmp = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp / "dist"),
                    str(CHECKOUT)], check=True, capture_output=True)
    wheel = next((tmp / "dist").glob("microscope_jupyter-*.whl"))
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


def test_mic_demo_boots_from_the_installed_package(installed):
    python, _, env, work = installed
    script = ("import microscope_jupyter as mic\n"
              "s = mic.demo()\n"
              "print(s.node_info()['elixir_version'] is not None)\n"
              "s.detach()\n")
    result = subprocess.run([python, "-c", script], cwd=work, env=env, capture_output=True,
                            text=True, timeout=240)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("True")


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
