// SourceView: a module's source with line numbers, scrolled to the line an
// event, crash or finding points at; each function that ran is shaded by
// how often it ran, its first line labelled with its calls and time.
// Model:
//   module, path, what, note: text     lines: [source lines]
//   functions: {"name/arity": first line}    ran: {"name/arity": [calls, total µs]}
//   line: the line to show (1-based, 0 none)   function: "name/arity" to show
//   snapshots: {"line": "3× · n = 7"}   inspect_line calls at that line, the newest binding
import { h, heat, injectStyle, baseCss, fmtUs, notesStrip } from "./common.js";

function render({ model, el }) {
  const root = h("div", { class: "mic mic-source" });
  injectStyle(root, baseCss + `
    .mic-source .code { max-height: 420px; overflow: auto; font-size: 12px; }
    .mic-source .ln { display: flex; white-space: pre; min-height: 17px; }
    .mic-source .ln .no { flex: none; width: 48px; text-align: right; padding-right: 10px; color: var(--mic-muted); user-select: none; }
    .mic-source .ln .ran { flex: none; width: 120px; color: var(--mic-muted); font-size: 11px; }
    .mic-source .ln.target { outline: 2px solid var(--jp-warn-color1, #f9ab00); outline-offset: -2px; }
    .mic-source .ln .text { flex: none; }
    .mic-source .ln .snap { margin-left: 16px; color: var(--mic-diff); font-style: italic; white-space: pre;
                            flex: 1 1 0; min-width: 12ch; overflow: hidden; text-overflow: ellipsis; }  /* whole on hover */
    .mic-source .note { padding: 4px 8px; color: var(--mic-muted); }
    .mic-source .note:empty { display: none; }`);
  const title = h("span", { class: "title" });
  const note = h("div", { class: "note" });
  const code = h("div", { class: "code mono" });
  root.append(h("div", { class: "bar" }, title), note, code);
  root.append(notesStrip(model));   // annotations (s.annotate)
  el.append(root);

  function draw() {
    const lines = model.get("lines") || [];
    const functions = model.get("functions") || {}, ran = model.get("ran") || {};
    const snapshots = model.get("snapshots") || {};
    title.replaceChildren(h("b", {}, model.get("module") || ""), " ",
      h("span", { class: "muted mono" }, model.get("path") || ""), " · ", model.get("what") || "");
    note.textContent = model.get("note") || "";
    // each function's extent: from its first line to the next function's
    const starts = Object.entries(functions).sort((a, b) => a[1] - b[1]);
    const owner = new Array(lines.length + 2).fill(null);
    starts.forEach(([key, first], i) => {
      const end = i + 1 < starts.length ? starts[i + 1][1] - 1 : lines.length;
      for (let n = first; n <= end && n <= lines.length; n++) owner[n] = key;
    });
    const most = Math.max(1, ...Object.values(ran).map((r) => r[0]));
    const target = model.get("line") || functions[model.get("function")] || 0;
    const rows = lines.map((text, i) => {
      const n = i + 1, key = owner[n], r = key ? ran[key] : null;
      const shade = r ? heat(Math.log1p(r[0]) / Math.log1p(most)) : null;
      return h("div", { class: `ln${n === target ? " target" : ""}`, "data-line": n,
                        "data-function": key || "", style: shade ? { background: shade.replace("rgb", "rgba").replace(")", ",0.18)") } : {} },
        h("span", { class: "no" }, String(n)),
        h("span", { class: "ran" }, r && functions[key] === n ? `${r[0]}× · ${fmtUs(r[1])}` : ""),
        h("span", { class: "text" }, text),
        snapshots[n] ? h("span", { class: "snap", title: snapshots[n] }, `⟵ ${snapshots[n]}`) : null);
    });
    if (!lines.length) code.replaceChildren(h("div", { class: "empty" }, "no source to show"));
    else code.replaceChildren(...rows);
    if (target > 0) {
      const row = code.querySelector(`.ln[data-line="${target}"]`);
      if (row) code.scrollTop = Math.max(0, row.offsetTop - code.clientHeight / 3);
    }
    el.dataset.target = String(target);
  }
  for (const name of ["lines", "functions", "ran", "snapshots", "line", "function", "note", "module", "path", "what"]) model.on(`change:${name}`, draw);
  draw();
  el.dataset.ready = "1";
  return () => root.remove();
}

export default { render };
