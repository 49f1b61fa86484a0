"""Build hook: compile the in-node Erlang agent and bundle the widgets so a wheel ships both."""

import shutil
import subprocess
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
AGENT = HERE / "elixir_hooks" / "agent" / "microscope_agent.erl"
AGENT_OUT = HERE / "microscope_jupyter" / "agent"
JS = HERE / "js"
STATIC = HERE / "microscope_jupyter" / "widgets" / "static"


# What `mic.demo()` and `microscope demo` need, shipped inside the package
# (as microscope_jupyter/examples/...) so an installed wheel runs them anywhere
# Erlang and Elixir are: the demo app's sources and the quickstart notebook.
EXAMPLES = [("examples/apps/demo", ["mix.exs", "lib/**/*.ex", "fixed/**/*.ex"]),
            ("examples/notebooks", ["01_quickstart.ipynb"]),
            ("elixir_hooks", ["mix.exs", "lib/**/*.ex"])]


class BuildWithAssets(build_py):
    def run(self):
        if shutil.which("erlc") and AGENT.exists():
            subprocess.run(["erlc", "-o", str(AGENT_OUT), str(AGENT)], check=True)
        if shutil.which("npm") and (JS / "package.json").exists() \
                and not (STATIC / "sequence_diagram.js").exists():
            if not (JS / "node_modules").exists():
                subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=JS, check=True)
            subprocess.run(["node", "build.mjs"], cwd=JS, check=True)
        super().run()
        package = Path(self.build_lib) / "microscope_jupyter"
        for folder, patterns in EXAMPLES:
            for pattern in patterns:
                for src in (HERE / folder).glob(pattern):
                    dest = package / src.relative_to(HERE)
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(src, dest)


setup(cmdclass={"build_py": BuildWithAssets})
