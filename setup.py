"""Build hooks: a wheel ships the in-node agent and the widget bundles, or the build fails.

Each part is built from its source when the tool is on the PATH (``erlc`` for
``elixir_hooks/agent/*.erl``; ``npm`` and ``node`` for ``js/``), else taken
from the prebuilt copy in the tree (an sdist carries both); with neither, the
build stops with one line that says what to install. ``sdist`` builds both
first when it can, so a wheel built from the sdist needs neither tool. The
sdist's file list is MANIFEST.in.
"""

import re
import shutil
import subprocess
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.command.sdist import sdist

HERE = Path(__file__).resolve().parent
AGENT_SOURCES = HERE / "elixir_hooks" / "agent"
AGENT_OUT = HERE / "microscope_jupyter" / "agent"
JS = HERE / "js"
STATIC = HERE / "microscope_jupyter" / "widgets" / "static"
# What the bundles are made from (./dev bundles again when any is newer).
JS_INPUTS = [JS / "build.mjs", HERE / "microscope_jupyter" / "widgets" / "palette.json"]


# What `mic.demo()` and `microscope demo` need, shipped inside the package
# (as microscope_jupyter/examples/...) so an installed wheel runs them anywhere
# Erlang and Elixir are: the demo app's sources and the quickstart notebook.
EXAMPLES = [("examples/apps/demo", ["mix.exs", "lib/**/*.ex", "fixed/**/*.ex"]),
            ("examples/notebooks", ["01_quickstart.ipynb"]),
            ("elixir_hooks", ["mix.exs", "lib/**/*.ex"])]


def fail(message):
    """Stop the build with one line (setuptools prints a SystemExit's text as is)."""
    raise SystemExit(f"error: {message}")


def build_agent(required):
    """Compile every agent module with erlc; else keep the prebuilt .beam files."""
    sources = sorted(AGENT_SOURCES.glob("*.erl"))
    beams = [AGENT_OUT / f"{src.stem}.beam" for src in sources] or [AGENT_OUT / "microscope_agent.beam"]
    erlc = shutil.which("erlc")
    if erlc and sources:
        done = subprocess.run([erlc, "-o", str(AGENT_OUT), *map(str, sources)],
                              capture_output=True, text=True)
        if done.returncode != 0:
            fail(f"the in-node agent does not compile: {(done.stdout + done.stderr).strip()}")
    elif required and not all(beam.exists() for beam in beams):
        fail("cannot build the in-node agent (microscope_jupyter/agent/*.beam): erlc is not on "
             "the PATH and no prebuilt .beam is here; install Erlang (apt-get install erlang-nox) "
             "and build again")


def bundle_names():
    """The widget entries build.mjs bundles (its ``entries`` list)."""
    found = re.search(r"const entries\s*=\s*\[(.*?)\]", (JS / "build.mjs").read_text(), re.S)
    return re.findall(r'"(\w+)"', found.group(1)) if found else []


def build_bundles(required):
    """Bundle the widgets when a bundle is missing or older than its sources and
    npm is here; else keep the prebuilt bundles."""
    if not (JS / "build.mjs").exists():
        names = [p.stem for p in STATIC.glob("*.js")]
        if required and not names:
            fail("no widget bundles (microscope_jupyter/widgets/static/*.js) and no js/ sources "
                 "to make them from; build from a git checkout or a complete sdist")
        return
    bundles = [STATIC / f"{name}.js" for name in bundle_names()]
    if not bundles:
        fail("js/build.mjs lists no widget entries (const entries = [...])")
    inputs = [*JS.joinpath("src").glob("*.js"), *JS_INPUTS]
    newest = max((p.stat().st_mtime for p in inputs if p.exists()), default=0)
    fresh = all(b.exists() and b.stat().st_mtime >= newest for b in bundles)
    if fresh:
        return
    npm, node = shutil.which("npm"), shutil.which("node")
    if npm and node:
        if not (JS / "node_modules").exists():
            run([npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"], JS, "npm ci")
        run([node, "build.mjs", "--log-level=warning"], JS, "bundling the widgets")
    elif required and not all(b.exists() for b in bundles):
        fail("cannot bundle the widgets (microscope_jupyter/widgets/static/*.js): npm and node "
             "are not on the PATH and no prebuilt bundles are here; install them "
             "(apt-get install nodejs npm) and build again")


def run(command, cwd, what):
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0:
        fail(f"{what} failed: {(done.stdout + done.stderr).strip()[-500:]}")


class BuildWithAssets(build_py):
    def run(self):
        build_agent(required=True)
        build_bundles(required=True)
        missing = [folder for folder, _ in EXAMPLES if not (HERE / folder).is_dir()]
        if missing:
            fail(f"{', '.join(missing)} missing from this source tree (the demo needs them); "
                 "build from a git checkout or a complete sdist")
        super().run()
        package = Path(self.build_lib) / "microscope_jupyter"
        for folder, patterns in EXAMPLES:
            for pattern in patterns:
                for src in (HERE / folder).glob(pattern):
                    dest = package / src.relative_to(HERE)
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(src, dest)


class SdistWithAssets(sdist):
    """An sdist with the sources and, when the tools are here, the built parts."""

    def run(self):
        build_agent(required=False)
        build_bundles(required=False)
        super().run()


setup(cmdclass={"build_py": BuildWithAssets, "sdist": SdistWithAssets})
