// SupervisionTree: a collapsible, searchable, virtualised process tree.
// Model (traitlets are the source of truth):
//   nodes: [{pid, name, parent, kind, status, message_queue_len, memory, initial_call, application}]
//   selected: pid string ("" = none)      query: search text      color_by: status|mailbox|memory
import { h, input, palette, heat, injectStyle, baseCss } from "./common.js";

const ROW = 22;

function render({ model, el }) {
  const root = h("div", { class: "mic mic-tree" });
  injectStyle(root, baseCss + `
    .mic-tree .viewport { height: 360px; overflow-y: auto; position: relative; }
    .mic-tree .row { position: absolute; left: 0; right: 0; height: ${ROW}px; display: flex;
                     align-items: center; gap: 6px; cursor: pointer; white-space: nowrap; }
    .mic-tree .row:hover { background: #f1f3f4; }
    .mic-tree .row.sel { background: #fef7e0; }
    .mic-tree .dot { width: 9px; height: 9px; border-radius: 50%; flex: none; }
    .mic-tree .caret { width: 14px; text-align: center; color: #5f6368; flex: none; }
    .mic-tree .sup { font-weight: 600; }
    .mic-tree .hit { background: #fde293; }`);
  const search = input({ type: "search", placeholder: "search pid, name, module…", class: "search" });
  const colorBy = h("select", { class: "color-by" },
    ["status", "mailbox", "memory"].map((v) => h("option", { value: v }, `colour: ${v}`)));
  const count = h("span", { class: "muted count" });
  const viewport = h("div", { class: "viewport" });
  const spacer = h("div", { class: "spacer" });
  viewport.append(spacer);
  root.append(h("div", { class: "bar" }, search, colorBy,
    h("button", { onclick: () => { collapsed.clear(); draw(); } }, "expand all"),
    h("button", { onclick: () => { for (const n of nodes) if (children.get(n.pid)?.length) collapsed.add(n.pid); draw(); } }, "collapse all"),
    count), viewport);
  el.append(root);

  let nodes = [], children = new Map(), roots = [], maxMem = 1, maxQueue = 1;
  const collapsed = new Set();
  let flat = [];

  function index() {
    nodes = model.get("nodes") || [];
    const byPid = new Map(nodes.map((n) => [n.pid, n]));
    children = new Map();
    roots = [];
    for (const n of nodes) {
      if (n.parent && byPid.has(n.parent)) {
        if (!children.has(n.parent)) children.set(n.parent, []);
        children.get(n.parent).push(n);
      } else roots.push(n);
    }
    maxMem = Math.max(1, ...nodes.map((n) => n.memory || 0));
    maxQueue = Math.max(1, ...nodes.map((n) => n.message_queue_len || 0));
  }

  function matches(n, q) {
    return !q || [n.pid, n.name, n.initial_call, n.application].some((v) => v && String(v).toLowerCase().includes(q));
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
      if (!collapsed.has(n.pid) || q) for (const c of children.get(n.pid) || []) walk(c, depth + 1);
    };
    for (const r of roots) walk(r, 0);
  }

  function color(n) {
    const by = model.get("color_by");
    if (by === "mailbox") return heat(Math.log1p(n.message_queue_len || 0) / Math.log1p(maxQueue));
    if (by === "memory") return heat(Math.log1p(n.memory || 0) / Math.log1p(maxMem));
    return palette[n.status] || "#5f6368";
  }

  function draw() {
    flatten();
    spacer.style.height = `${flat.length * ROW}px`;
    count.textContent = `${flat.length} of ${nodes.length} processes`;
    paint();
  }

  function paint() {
    for (const r of [...viewport.querySelectorAll(".row")]) r.remove();
    const first = Math.max(0, Math.floor(viewport.scrollTop / ROW) - 5);
    const last = Math.min(flat.length, first + Math.ceil(viewport.clientHeight / ROW) + 10);
    const sel = model.get("selected");
    const q = (model.get("query") || "").toLowerCase();
    for (let i = first; i < last; i++) {
      const { n, depth } = flat[i];
      const kids = children.get(n.pid) || [];
      const row = h("div", {
        class: `row${n.pid === sel ? " sel" : ""}`, "data-pid": n.pid,
        style: { top: `${i * ROW}px`, paddingLeft: `${8 + depth * 16}px` },
        title: `${n.pid} ${n.name || ""}\n${n.initial_call || ""}\nstatus ${n.status}, mailbox ${n.message_queue_len}, memory ${n.memory} B`,
      },
        h("span", { class: "caret" }, kids.length ? (collapsed.has(n.pid) && !q ? "▸" : "▾") : ""),
        h("span", { class: "dot", style: { background: color(n) } }),
        h("span", { class: `${n.kind === "supervisor" ? "sup " : ""}${q && matches(n, q) ? "hit" : ""}` }, n.name || n.pid),
        n.name ? h("span", { class: "muted mono" }, n.pid) : null,
        h("span", { class: "muted" }, n.initial_call || ""),
        n.message_queue_len ? h("span", { class: "muted" }, `✉ ${n.message_queue_len}`) : null);
      row.querySelector(".caret").addEventListener("click", (e) => {
        e.stopPropagation();
        if (collapsed.has(n.pid)) collapsed.delete(n.pid); else collapsed.add(n.pid);
        draw();
      });
      row.addEventListener("click", () => { model.set("selected", n.pid); model.save_changes(); });
      viewport.append(row);
    }
  }

  viewport.addEventListener("scroll", () => requestAnimationFrame(paint));
  search.value = model.get("query") || "";
  search.addEventListener("input", () => { model.set("query", search.value); model.save_changes(); });
  colorBy.value = model.get("color_by") || "status";
  colorBy.addEventListener("change", () => { model.set("color_by", colorBy.value); model.save_changes(); });
  model.on("change:nodes", () => { index(); draw(); });
  model.on("change:query", () => { if (search.value !== model.get("query")) search.value = model.get("query"); draw(); });
  model.on("change:color_by", () => { colorBy.value = model.get("color_by"); paint(); });
  model.on("change:selected", paint);
  index();
  draw();
  requestAnimationFrame(paint);
  return () => root.remove();
}

export default { render };
