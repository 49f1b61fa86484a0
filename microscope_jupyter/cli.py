"""Command line: ``microscope demo [--out DIR]``, ``microscope report NOTEBOOK``,
``microscope mcp --node NODE``.

``demo`` runs the quickstart notebook headlessly: it boots the bundled demo
app as a local node, traces the seed scenario (WorkerA sends a counter to
WorkerB on every tick), finds why updates go missing, and writes the
executed notebook and its report (one self-contained HTML file, widgets
live, works offline) to ``out/``.
"""

from __future__ import annotations

import argparse
import logging
import sys
import textwrap
import time
from pathlib import Path

from .agent.options import ASSISTANT_CEILINGS, DURATION, LIMITS
from .beam.address import read_cookie_file
from .errors import MicroscopeError
from .package_data import version
from .report import report_notebook
from .session import attach


def demo(out_dir: str = "out") -> int:
    """Run the quickstart notebook headlessly against the bundled demo node."""
    try:
        import nbformat
        from nbclient import NotebookClient
    except ImportError as exc:
        raise SystemExit(f"running the quickstart needs {exc.name}: "
                         "pip install 'microscope-jupyter[notebook]'") from None

    source = _quickstart_path()
    out = Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    nb = nbformat.read(source, as_version=4)
    print(f"Running {source.name} against the bundled demo app (boots a local node)…", flush=True)
    started = time.monotonic()
    NotebookClient(nb, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(out)}}).execute()
    executed = out / source.name
    nbformat.write(nb, executed)
    html_path, _ = report_notebook(executed)
    print(f"Done in {time.monotonic() - started:.0f} s.")
    print(f"  executed notebook: {executed}")
    print(f"  report (offline):  {html_path}")
    for cell in nb.cells:
        if cell.cell_type == "code" and "findings" in cell.source:
            for output in cell.outputs:
                text = output.get("data", {}).get("text/plain")
                if text:
                    print("\nWhat the recording found:\n" + text)
        if cell.cell_type == "code" and "s.explain(" in cell.source:
            answer = "".join(o.get("text", "") for o in cell.outputs if o.get("name") == "stdout")
            if answer:
                print("\nWhy, in one paragraph (s.explain):\n" + textwrap.fill(answer, 100))
    jupyter = Path(sys.executable).with_name("jupyter")
    print(f"\nOpen it in JupyterLab:  {jupyter if jupyter.exists() else 'jupyter'} lab {executed}")
    return 0


def _mcp(args) -> int:
    try:
        from .assistant import Assistant, Ceilings, build_server
    except ImportError as exc:
        raise SystemExit(f"microscope mcp needs the mcp package ({exc.name}): "
                         "pip install 'microscope-jupyter[mcp]'") from None
    cookie = read_cookie_file(args.cookie_file) if args.cookie_file else None
    ceilings = (Ceilings(**{name: getattr(args, name) for name in LIMITS})
                if args.allow_trace else None)
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING)   # stdout is the protocol's
    session = attach(args.node, cookie=cookie, ssh=args.ssh)
    try:
        # notebook=False: nobody can answer %beam_mcp approve here, and the answers say so
        build_server(Assistant(session, ceilings=ceilings, cap=args.cap, save_dir=args.save_dir,
                               allow_save=args.allow_save, notebook=False)).run("stdio")
    finally:
        session.detach()      # the agent stops every trace and cleans up on the node
    return 0


def _report(args) -> int:
    import importlib.util

    if importlib.util.find_spec("nbconvert") is None:
        raise SystemExit("microscope report needs nbconvert: "
                         "pip install 'microscope-jupyter[notebook]'") from None
    path, counts = report_notebook(args.notebook, args.out)
    static = f", {counts['static']} static (no saved state)" if counts["static"] else ""
    print(f"{path}: {counts['live']} widget(s) live{static}; opens offline")
    return 0


def _quickstart_path() -> Path:
    """The copy an installed package ships, else a checkout's."""
    here = Path(__file__).resolve().parent
    notebook = Path("examples") / "notebooks" / "01_quickstart.ipynb"
    for candidate in (here / notebook, here.parent / notebook, Path.cwd() / notebook):
        if candidate.exists():
            return candidate
    raise SystemExit(f"{notebook} was not found: reinstall microscope-jupyter, or run from a "
                     "checkout")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="microscope", description="BEAM Microscope: look inside live Elixir and Erlang nodes.")
    parser.add_argument("--version", action="version", version=f"microscope {version()}")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("demo", help="run the quickstart notebook against the bundled demo app")
    run.add_argument("--out", default="out", help="where the executed notebook and HTML go")
    report = sub.add_parser("report", help="an executed notebook as one self-contained HTML "
                            "file: widgets live, no CDN, opens offline")
    report.add_argument("notebook", help="the executed notebook (.ipynb, widget state saved)")
    report.add_argument("-o", "--out", help="the HTML file (default: NOTEBOOK with .html)")
    serve = sub.add_parser("mcp", help="serve a node to AI assistants over MCP (stdio)")
    serve.add_argument("--node", required=True, help="the node to attach to, name@host")
    serve.add_argument("--cookie-file", help="a file holding the cookie (else "
                       "$MICROSCOPE_COOKIE, then ~/.erlang.cookie)")
    serve.add_argument("--ssh", metavar="USER@HOST", help="reach the node through one SSH "
                       "connection to HOST (~/.ssh/config, keys and ssh-agent as ssh uses them)")
    serve.add_argument("--allow-trace", action="store_true",
                       help="pre-approve traces within the ceilings below (else each needs the "
                            "human: stdio has no notebook to approve in, so the client must ask "
                            "through elicitation, and a client that cannot is told so)")
    for name, option in LIMITS.items():      # --max-events N ... --max-duration S
        most = getattr(ASSISTANT_CEILINGS, name)
        seconds = option is DURATION
        serve.add_argument(option.ceiling_flag, dest=name, default=most,
                           type=float if seconds else option.kind, metavar="S" if seconds else "N",
                           help=f"with --allow-trace, the most {name} may be"
                                + (f", in seconds (default {most:g})" if seconds else
                                   f" (default {most:,}): {option.doc}").replace("%", "%%"))
    serve.add_argument("--cap", type=int, default=8_000, help="characters per answer")
    serve.add_argument("--save-dir", help="the folder the assistant's saves go into, each a new "
                       "folder in it (else the save tool is off)")
    serve.add_argument("--allow-save", action="store_true",
                       help="pre-approve saves into --save-dir (else each needs the human, "
                            "through elicitation)")
    args = parser.parse_args(argv)
    try:
        if args.command == "demo":
            return demo(args.out)
        if args.command == "mcp":
            return _mcp(args)
        if args.command == "report":
            return _report(args)
    except MicroscopeError as exc:
        print(f"microscope: {exc}", file=sys.stderr)
        return 1
    return 2


if __name__ == "__main__":
    sys.exit(main())
