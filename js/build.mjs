// Bundle each widget entry into the Python package (offline; no CDN at runtime).
import { build } from "esbuild";
import { fileURLToPath } from "node:url";
import path from "node:path";

const here = path.dirname(fileURLToPath(import.meta.url));
const entries = ["supervision_tree", "sequence_diagram", "time_travel", "timeline", "process_graph",
                 "source_view", "report_runtime", "overview"];

await build({
  entryPoints: entries.map((e) => path.join(here, "src", `${e}.js`)),
  outdir: path.join(here, "..", "microscope_jupyter", "widgets", "static"),
  bundle: true,
  format: "esm",
  minify: true,
  target: ["es2020"],
  logLevel: "info",
});
