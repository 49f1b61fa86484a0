// SupervisionTree: a collapsible, searchable, virtualised process tree at
// observer grade: grouped by application (the user's first), sortable
// counters, a colour legend, an "as of" time with live refresh, restart
// counts, and a details panel for the selected process.
// Model (traitlets are the source of truth):
//   nodes: [{pid, name, parent, kind, status, message_queue_len, memory, reductions,
//            initial_call, application, restarts, findings: [{severity, text, seq}]}]
//   selected: pid ("" = none)   query: search text   color_by: mailbox|status|memory|reductions
//   sort_by: tree|mailbox|memory|reductions    user_apps: [app]    as_of: "HH:MM:SS"   live: bool
//   can_trace: bool    details: {pid, state, links, monitors, monitored_by, counters, trace, error}
//   Python answers {event: "trace", pid, seconds} by tracing that process.
import { h, input, palette, ui, heat, injectStyle, baseCss, onResize, notesStrip } from "./common.js";

const ROW = 22;
const COUNTERS = [["message_queue_len", "mailbox", "mailbox"], ["memory", "memory", "memory"],
                  ["reductions", "reductions", "reductions"]];

function render({ model, el }) {
  const root = h("div", { class: "mic mic-tree" });
  injectStyle(root, baseCss + `
    .mic-tree .viewport { height: 360px; overflow-y: auto; position: relative; }
    .mic-tree .head, .mic-tree .row { display: grid; grid-template-columns: minmax(260px, 1fr) 220px 80px 90px 100px 56px;
                     align-items: center; white-space: nowrap; }
    .mic-tree .head { padding: 2px 0; border-bottom: 1px solid var(--mic-line); background: var(--mic-panel); }
    .mic-tree .head span { padding: 0 6px; } .mic-tree .head .num { text-align: right; cursor: pointer; }
    .mic-tree .head .num.on { color: var(--mic-accent); font-weight: 600; }
    .mic-tree .row { position: absolute; left: 0; right: 0; height: ${ROW}px; cursor: pointer; }
    .mic-tree .row > span { overflow: hidden; text-overflow: ellipsis; padding: 0 6px; }
    .mic-tree .row .num { text-align: right; font-variant-numeric: tabular-nums; }
    .mic-tree .row:hover { background: var(--mic-faint); }
    .mic-tree .row.sel { background: var(--mic-selected); }
    .mic-tree .row.group { font-weight: 600; color: var(--mic-muted); cursor: default; }
    .mic-tree .name { display: flex; align-items: center; gap: 6px; }
    .mic-tree .dot { width: 9px; height: 9px; border-radius: 50%; flex: none; }
    .mic-tree .caret { width: 14px; text-align: center; color: var(--mic-muted); flex: none; }
    .mic-tree .sup { font-weight: 600; }
    .mic-tree .hit { background: color-mix(in srgb, var(--jp-warn-color1, #f9ab00) 40%, transparent); }
    .mic-tree .restarts { color: var(--mic-crash); }
    .mic-tree .finding.error { color: var(--mic-crash); } .mic-tree .finding.warning { color: var(--jp-warn-color1, #b06000); }
    .mic-tree .finding.info { color: var(--mic-accent); } .mic-tree .finding.note { color: ${ui.note}; }
    .mic-tree .legend { display: inline-flex; align-items: center; gap: 4px; }
    .mic-tree .swatch { display: inline-block; width: 10px; height: 10px; border-radius: 50%; }
    .mic-tree .ramp { display: inline-block; width: 80px; height: 8px; border-radius: 4px;
                      background: linear-gradient(to right, ${heat(0)}, ${heat(0.5)}, ${heat(1)}); }
    .mic-tree .details { border-top: 1px solid var(--mic-line); padding: 6px 8px; max-height: 220px; overflow: auto; }
    .mic-tree .details:empty { display: none; }
    .mic-tree .details pre { margin: 4px 0; white-space: pre-wrap; }
    .mic-tree .details .err { color: var(--mic-crash); }`);
  const search = input({ type: "search", placeholder: "search pid, name, module…", class: "search" });
  const colorBy = h("select", { class: "color-by" },
    ["mailbox", "status", "memory", "reductions"].map((v) => h("option", { value: v }, `colour: ${v}`)));
  const count = h("span", { class: "muted count" });
  const legend = h("span", { class: "legend muted" });
  const asOf = h("span", { class: "muted as-of" });
  const live = input({ type: "checkbox", class: "live" });
  const viewport = h("div", { class: "viewport" });
  const spacer = h("div", { class: "spacer" });
  viewport.append(spacer);
  const head = h("div", { class: "head muted" }, h("span", {}, "process"), h("span", {}, "started as"),
    ...COUNTERS.map(([, key, label]) => h("span", { class: "num", "data-sort": key, title: `sort by ${label} (again: tree order)` }, label)),
    h("span", { class: "num", title: "restarts seen in the recording" }, "↻"));
  const details = h("div", { class: "details" });
  root.append(h("div", { class: "bar" }, search, colorBy, legend,
    h("button", { onclick: () => { collapsed.clear(); draw(); } }, "expand all"),
    h("button", { onclick: () => { for (const n of nodes) if (children.get(n.pid)?.length) collapsed.add(n.pid); draw(); } }, "collapse all"),
    count, asOf, h("label", { class: "muted" }, live, " live")), head, viewport, details);
  root.append(notesStrip(model));   // annotations (s.annotate)
  el.append(root);

  let nodes = [], children = new Map(), groups = [], maxOf = {};
  const collapsed = new Set();
  let flat = [];

  function index() {
    nodes = model.get("nodes") || [];
    const byPid = new Map(nodes.map((n) => [n.pid, n]));
    children = new Map();
    const roots = [];
    for (const n of nodes) {
      if (n.parent && byPid.has(n.parent)) {
        if (!children.has(n.parent)) children.set(n.parent, []);
        children.get(n.parent).push(n);
      } else roots.push(n);
    }
    // roots grouped by application: the user's applications first, then OTP's, then none
    const user = new Set(model.get("user_apps") || []);
    const byApp = new Map();
    for (const r of roots) {
      const app = r.application || "";
      if (!byApp.has(app)) byApp.set(app, []);
      byApp.get(app).push(r);
    }
    const rank = (app) => (app === "" ? 2 : user.has(app) ? 0 : 1);
    groups = [...byApp.entries()].sort((a, b) => rank(a[0]) - rank(b[0]) || a[0].localeCompare(b[0]));
    maxOf = {};
    for (const [key] of COUNTERS) maxOf[key] = Math.max(1, ...nodes.map((n) => n[key] || 0));
  }

  function matches(n, q) {
    return !q || [n.pid, n.name, n.initial_call, n.application].some((v) => v && String(v).toLowerCase().includes(q));
  }

  const sortKey = () => ({ mailbox: "message_queue_len", memory: "memory", reductions: "reductions" })[model.get("sort_by")];
  function ordered(list) {
    const key = sortKey();
    return key ? [...list].sort((a, b) => (b[key] || 0) - (a[key] || 0)) : list;
  }

  // Flatten the visible tree; with a query, keep matches and their ancestors.
  function flatten() {
    const q = (model.get("query") || "").toLowerCase();
    const keep = new Set();
    if (q) {
      const parentOf = new Map(nodes.map((n) => [n.pid, n.parent]));
      for (const n of nodes) if (matches(n, q)) {
        let p = n.pid;
        while (p && !keep.has(p)) { keep.add(p); p = parentOf.get(p); }
      }
    }
    flat = [];
    const walk = (n, depth) => {
      if (q && !keep.has(n.pid)) return;
      flat.push({ n, depth });
      if (!collapsed.has(n.pid) || q) for (const c of ordered(children.get(n.pid) || [])) walk(c, depth + 1);
    };
    for (const [app, roots] of groups) {
      if (q && !roots.some((r) => keep.has(r.pid))) continue;
      flat.push({ group: app || "(no application)", user: (model.get("user_apps") || []).includes(app) });
      if (!collapsed.has(`app:${app}`)) for (const r of ordered(roots)) walk(r, 1);
    }
  }

  function color(n) {
    const by = model.get("color_by");
    if (by === "status") return palette[n.status] || "#5f6368";
    const key = by === "mailbox" ? "message_queue_len" : by;
    return heat(Math.log1p(n[key] || 0) / Math.log1p(maxOf[key] || 1));
  }

  function drawLegend() {
    const by = model.get("color_by");
    if (by === "status") {
      const seen = [...new Set(nodes.map((n) => n.status))].filter(Boolean);
      legend.replaceChildren(...seen.map((s) => h("span", { class: "legend" },
        h("span", { class: "swatch", style: { background: palette[s] || "#5f6368" } }), s)));
    } else {
      const key = by === "mailbox" ? "message_queue_len" : by;
      legend.replaceChildren("0", h("span", { class: "ramp" }), `${(maxOf[key] || 0).toLocaleString()} ${by}`);
    }
  }

  function draw() {
    flatten();
    spacer.style.height = `${flat.length * ROW}px`;
    count.textContent = nodes.length ? `${flat.filter((f) => f.n).length} of ${nodes.length} processes`
      : "no processes: attach to a node, or record one";
    asOf.textContent = model.get("as_of") ? `as of ${model.get("as_of")}` : "";
    for (const s of head.querySelectorAll("[data-sort]")) s.classList.toggle("on", s.dataset.sort === model.get("sort_by"));
    drawLegend();
    paint();
  }

  function paint() {
    for (const r of [...viewport.querySelectorAll(".row")]) r.remove();
    const first = Math.max(0, Math.floor(viewport.scrollTop / ROW) - 5);
    const last = Math.min(flat.length, first + Math.ceil((viewport.clientHeight || 360) / ROW) + 10);
    const sel = model.get("selected");
    const q = (model.get("query") || "").toLowerCase();
    for (let i = first; i < last; i++) {
      const item = flat[i];
      if (item.group !== undefined) {
        const key = `app:${item.group === "(no application)" ? "" : item.group}`;
        const row = h("div", { class: "row group", "data-app": item.group, style: { top: `${i * ROW}px` } },
          h("span", { class: "name" }, h("span", { class: "caret" }, collapsed.has(key) ? "▸" : "▾"),
            item.group + (item.user ? "" : item.group === "(no application)" ? "" : " (OTP)")));
        row.addEventListener("click", () => { if (collapsed.has(key)) collapsed.delete(key); else collapsed.add(key); draw(); });
        viewport.append(row);
        continue;
      }
      const { n, depth } = item;
      const kids = children.get(n.pid) || [];
      const row = h("div", {
        class: `row${n.pid === sel ? " sel" : ""}`, "data-pid": n.pid, style: { top: `${i * ROW}px` },
        title: `${n.pid} ${n.name || ""}\n${n.initial_call || ""}\nstatus ${n.status}`,
      },
        h("span", { class: "name", style: { paddingLeft: `${6 + depth * 16}px` } },
          h("span", { class: "caret" }, kids.length ? (collapsed.has(n.pid) && !q ? "▸" : "▾") : ""),
          h("span", { class: "dot", style: { background: color(n) } }),
          h("span", { class: `${n.kind === "supervisor" ? "sup " : ""}${q && matches(n, q) ? "hit" : ""}` }, n.name || n.pid),
          n.name ? h("span", { class: "muted mono" }, n.pid) : null),
        h("span", { class: "muted" }, n.initial_call || ""),
        ...COUNTERS.map(([key]) => h("span", { class: "num" }, (n[key] || 0).toLocaleString())),
        h("span", { class: "num restarts" }, n.restarts ? `↻ ${n.restarts}` : "",
          (n.findings || []).length ? h("span", { class: `finding ${worst(n.findings)}`, title: n.findings.map((f) => `${f.severity}: ${f.text}`).join("\n") }, ` ⚠${n.findings.length}`) : null));
      row.querySelector(".caret").addEventListener("click", (e) => {
        e.stopPropagation();
        if (collapsed.has(n.pid)) collapsed.delete(n.pid); else collapsed.add(n.pid);
        draw();
      });
      row.addEventListener("click", () => { model.set("selected", n.pid); model.save_changes(); });
      viewport.append(row);
    }
  }

  function worst(findings) {
    return findings.some((f) => f.severity === "error") ? "error" : findings.some((f) => f.severity === "warning") ? "warning" : findings.every((f) => f.severity === "note") ? "note" : "info";
  }

  function drawDetails() {
    const d = model.get("details") || {};
    const sel = model.get("selected");
    if (model.offline && sel && d.pid !== sel) {   // a saved report that kept no details of it
      details.replaceChildren(h("div", { class: "muted" }, `the details of ${sel} need the notebook's kernel: this saved report did not keep them`));
      return;
    }
    if (!d.pid && !d.error) { details.replaceChildren(); return; }
    const node = nodes.find((n) => n.pid === d.pid);
    const line = (label, items) => items && items.length ? h("div", {}, h("span", { class: "muted" }, `${label}: `), items.join(", ")) : null;
    const trace = model.get("can_trace") && !model.offline && d.pid ? h("button", { class: "trace", onclick: () => model.send({ event: "trace", pid: d.pid, seconds: 5 }) }, "trace it for 5 s") : null;
    details.replaceChildren(...[
      h("div", {}, h("b", {}, node ? (node.name || node.pid) : d.pid || ""), " ", h("span", { class: "muted mono" }, d.pid || ""), " ", trace),
      d.error ? h("div", { class: "err" }, d.error) : null,
      d.counters ? h("div", { class: "muted" }, d.counters, d.current_function ? ` · in ${d.current_function}` : "") : null,
      d.state ? h("pre", { class: "mono state" }, d.state) : null,
      line("links", d.links), line("monitors", d.monitors), line("monitored by", d.monitored_by),
      ...((node && node.findings) || []).map((f) => h("div", { class: `finding ${f.severity}` }, `${f.severity}: ${f.text} (#${f.seq})`)),
      d.trace ? h("div", { class: "muted" }, d.trace) : null].filter(Boolean));
  }

  viewport.addEventListener("scroll", () => requestAnimationFrame(paint));
  for (const s of head.querySelectorAll("[data-sort]")) {
    s.addEventListener("click", () => {
      model.set("sort_by", model.get("sort_by") === s.dataset.sort ? "tree" : s.dataset.sort); model.save_changes();
    });
  }
  search.value = model.get("query") || "";
  search.addEventListener("input", () => { model.set("query", search.value); model.save_changes(); });
  colorBy.value = model.get("color_by") || "mailbox";
  colorBy.addEventListener("change", () => { model.set("color_by", colorBy.value); model.save_changes(); });
  live.checked = !!model.get("live");
  live.addEventListener("change", () => { model.set("live", live.checked); model.save_changes(); });
  if (model.offline) {   // a saved report: nothing to refresh from
    live.disabled = true;
    live.parentElement.title = "live refresh needs the notebook's kernel: this is a saved report";
  }
  model.on("change:nodes", () => { index(); draw(); });
  model.on("change:user_apps", () => { index(); draw(); });
  model.on("change:query", () => { if (search.value !== model.get("query")) search.value = model.get("query"); draw(); });
  model.on("change:color_by", () => { colorBy.value = model.get("color_by"); drawLegend(); paint(); });
  model.on("change:sort_by", draw);
  model.on("change:as_of", draw);
  model.on("change:live", () => { live.checked = !!model.get("live"); });
  model.on("change:selected", () => { paint(); if (model.offline) drawDetails(); });
  model.on("change:details", drawDetails);
  const stopResize = onResize(viewport, paint);
  index();
  draw();
  drawDetails();
  requestAnimationFrame(paint);
  return () => { stopResize(); root.remove(); };
}

export default { render };
