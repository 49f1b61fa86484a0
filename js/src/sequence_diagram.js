// SequenceDiagram: lifelines across, messages down, drawn on a canvas, only
// the rows in view. Stays fluid at 50k messages.
// Model:
//   lanes: [{id, label}]
//   msgs: {from:[lane], to:[lane|-1], seq:[], recv_seq:[], kind:[], status:[], latency_us:[], text:[]}
//   crashes: [{lane, row, text}]   (a crash is drawn after the message row it follows)
//   selected: seq of the clicked message (-1 none)    cursor: seq (linked to TimeTravel)
//   filter: text filter      hidden: [lane ids]       row_filter: [row indices] or null (Python pattern)
import { h, input, palette, injectStyle, baseCss } from "./common.js";

const HEADER = 34;

function render({ model, el }) {
  const root = h("div", { class: "mic mic-seq" });
  injectStyle(root, baseCss + `
    .mic-seq .viewport { height: 420px; overflow: auto; position: relative; }
    .mic-seq canvas { position: sticky; top: 0; left: 0; display: block; }
    .mic-seq .legend span { margin-right: 10px; }`);
  const filter = input({ type: "search", placeholder: "filter messages (text)…", class: "filter" });
  const zoomIn = h("button", { title: "zoom in" }, "+");
  const zoomOut = h("button", { title: "zoom out" }, "−");
  const info = h("span", { class: "muted info" });
  const showAll = h("button", { class: "show-all", title: "show every process again" }, "show all");
  const legend = h("span", { class: "legend muted" },
    ...["call", "reply", "cast", "info", "lost"].map((k) => h("span", { style: { color: palette[k] } }, `━ ${k}`)));
  const viewport = h("div", { class: "viewport", tabindex: "0" });
  const spacer = h("div", { class: "spacer" });
  const canvas = h("canvas");
  const tip = h("div", { class: "tip", style: { display: "none" } });
  viewport.append(canvas, spacer);
  root.append(h("div", { class: "bar" }, filter, zoomOut, zoomIn, showAll, legend, info), viewport, tip);
  el.append(root);

  let lanes = [], msgs = null, rows = [], laneX = [], rowH = 22, laneW = 150;
  const ctx = canvas.getContext("2d");

  function rebuild() {
    lanes = (model.get("lanes") || []).filter((l) => !(model.get("hidden") || []).includes(l.id));
    const all = model.get("lanes") || [];
    const visibleLane = new Map(lanes.map((l, i) => [all.indexOf(l), i]));
    msgs = model.get("msgs") || { from: [], to: [], seq: [], text: [] };
    const q = (model.get("filter") || "").toLowerCase();
    const only = model.get("row_filter");
    const allowed = only ? new Set(only) : null;
    rows = [];
    for (let i = 0; i < msgs.seq.length; i++) {
      if (allowed && !allowed.has(i)) continue;
      if (!visibleLane.has(msgs.from[i]) && !visibleLane.has(msgs.to[i])) continue;
      if (q && !String(msgs.text[i]).toLowerCase().includes(q)) continue;
      rows.push(i);
    }
    laneX = new Map([...visibleLane].map(([orig, vis]) => [orig, 80 + vis * laneW]));
    layout();
  }

  function layout() {
    const width = Math.max(viewport.clientWidth || 800, 80 + lanes.length * laneW + 60);
    spacer.style.height = `${HEADER + rows.length * rowH + 20}px`;
    spacer.style.width = `${width}px`;
    spacer.style.marginTop = `-${viewport.clientHeight || 420}px`;
    info.textContent = `${rows.length.toLocaleString()} of ${(msgs.seq || []).length.toLocaleString()} messages · ${lanes.length} processes`;
    paint();
  }

  function arrowKind(i) {
    if (msgs.status[i] === "lost") return "lost";
    return msgs.kind[i] || "info";
  }

  let frameTimes = [];
  function paint() {
    const t0 = performance.now();
    const w = viewport.clientWidth || 800, hgt = viewport.clientHeight || 420;
    const dpr = window.devicePixelRatio || 1;
    if (canvas.width !== w * dpr || canvas.height !== hgt * dpr) {
      canvas.width = w * dpr; canvas.height = hgt * dpr;
      canvas.style.width = `${w}px`; canvas.style.height = `${hgt}px`;
    }
    ctx.setTransform(dpr, 0, 0, dpr, -viewport.scrollLeft * dpr, 0);
    ctx.clearRect(viewport.scrollLeft, 0, w, hgt);
    const top = viewport.scrollTop;
    const first = Math.max(0, Math.floor((top - HEADER) / rowH) - 1);
    const last = Math.min(rows.length, first + Math.ceil(hgt / rowH) + 2);
    // lifelines
    ctx.strokeStyle = "#dadce0"; ctx.lineWidth = 1;
    for (const x of laneX.values()) { ctx.beginPath(); ctx.moveTo(x, HEADER); ctx.lineTo(x, hgt); ctx.stroke(); }
    const sel = model.get("selected"), cursor = model.get("cursor");
    ctx.font = "11px ui-monospace, Menlo, monospace";
    for (let r = first; r < last; r++) {
      const i = rows[r];
      const y = HEADER + r * rowH - top + rowH / 2;
      const x1 = laneX.get(msgs.from[i]);
      let x2 = laneX.get(msgs.to[i]);
      const kind = arrowKind(i);
      if (msgs.seq[i] === sel || (cursor >= 0 && msgs.seq[i] <= cursor && (r + 1 >= rows.length || msgs.seq[rows[r + 1]] > cursor))) {
        ctx.fillStyle = msgs.seq[i] === sel ? "#fef7e0" : "#e8f0fe";
        ctx.fillRect(viewport.scrollLeft, y - rowH / 2, w, rowH);
      }
      ctx.strokeStyle = palette[kind] || "#3c4043";
      ctx.fillStyle = ctx.strokeStyle;
      ctx.setLineDash(kind === "reply" ? [3, 3] : kind === "lost" ? [6, 3] : []);
      ctx.lineWidth = kind === "call" ? 2 : 1.3;
      if (x1 === undefined && x2 === undefined) continue;
      if (x2 === undefined) x2 = x1 + (kind === "lost" ? 60 : 40);
      const xs = x1 === undefined ? x2 - 40 : x1;
      ctx.beginPath(); ctx.moveTo(xs, y); ctx.lineTo(x2, y); ctx.stroke(); ctx.setLineDash([]);
      const dir = x2 >= xs ? 1 : -1;
      if (kind === "lost") {
        ctx.beginPath(); ctx.moveTo(x2 - 4, y - 4); ctx.lineTo(x2 + 4, y + 4);
        ctx.moveTo(x2 + 4, y - 4); ctx.lineTo(x2 - 4, y + 4); ctx.stroke();
      } else {
        ctx.beginPath(); ctx.moveTo(x2, y); ctx.lineTo(x2 - 7 * dir, y - 4); ctx.lineTo(x2 - 7 * dir, y + 4); ctx.fill();
      }
      const label = String((msgs.label || msgs.text)[i]);
      const room = Math.max(40, Math.abs(x2 - xs) - 10);
      ctx.fillStyle = "#3c4043";
      ctx.fillText(label.length * 6.6 > room ? label.slice(0, Math.floor(room / 6.6) - 1) + "…" : label,
                   Math.min(xs, x2) + 5, y - 4);
    }
    // crashes on lifelines
    for (const c of model.get("crashes") || []) {
      const x = laneX.get(c.lane);
      if (x === undefined) continue;
      const r = rows.findIndex((i) => i > c.row);
      const y = HEADER + (r < 0 ? rows.length : r) * rowH - top;
      if (y < HEADER || y > hgt) continue;
      ctx.fillStyle = palette.crash; ctx.font = "bold 14px sans-serif";
      ctx.fillText("✖", x - 5, y + 5); ctx.font = "11px ui-monospace, Menlo, monospace";
    }
    // sticky header
    ctx.fillStyle = "#f8f9fa"; ctx.fillRect(viewport.scrollLeft, 0, w, HEADER);
    ctx.fillStyle = "#202124"; ctx.font = "600 11px sans-serif"; ctx.textAlign = "center";
    lanes.forEach((l, k) => {
      const x = 80 + k * laneW;
      ctx.fillText(String(l.label).slice(0, 22), x, 14);
      ctx.fillStyle = "#5f6368"; ctx.font = "10px ui-monospace, Menlo, monospace";
      ctx.fillText(l.id, x, 27); ctx.fillStyle = "#202124"; ctx.font = "600 11px sans-serif";
    });
    ctx.textAlign = "left";
    frameTimes.push(performance.now() - t0);
    if (frameTimes.length > 240) frameTimes.shift();
    el.dataset.frameMs = (frameTimes.reduce((a, b) => a + b, 0) / frameTimes.length).toFixed(2);
    el.dataset.rows = String(rows.length);
  }

  function rowAt(ev) {
    const rect = viewport.getBoundingClientRect();
    const y = ev.clientY - rect.top + viewport.scrollTop - HEADER;
    const r = Math.floor(y / rowH);
    return r >= 0 && r < rows.length ? rows[r] : -1;
  }

  viewport.addEventListener("scroll", () => requestAnimationFrame(paint));
  viewport.addEventListener("mousemove", (ev) => {
    const i = rowAt(ev);
    if (i < 0) { tip.style.display = "none"; return; }
    const lat = msgs.latency_us[i];
    tip.textContent = `#${msgs.seq[i]} ${msgs.kind[i] || ""} ${msgs.status[i]}` +
      (lat === null || lat === undefined || Number.isNaN(lat) ? "" : ` · ${Math.round(lat)} µs`) + `\n${msgs.text[i]}`;
    tip.style.display = "block"; tip.style.left = `${ev.clientX + 12}px`; tip.style.top = `${ev.clientY + 12}px`;
  });
  viewport.addEventListener("mouseleave", () => { tip.style.display = "none"; });
  viewport.addEventListener("click", (ev) => {
    const rect = viewport.getBoundingClientRect();
    if (ev.clientY - rect.top < HEADER) {
      // A click on a lifeline's name hides that process.
      const x = ev.clientX - rect.left + viewport.scrollLeft;
      const k = Math.round((x - 80) / laneW);
      if (k >= 0 && k < lanes.length) {
        model.set("hidden", [...(model.get("hidden") || []), lanes[k].id]);
        model.save_changes();
      }
      return;
    }
    const i = rowAt(ev);
    if (i >= 0) { model.set("selected", msgs.seq[i]); model.set("cursor", msgs.seq[i]); model.save_changes(); }
  });
  viewport.addEventListener("wheel", (ev) => {
    if (!ev.ctrlKey) return;
    ev.preventDefault();
    rowH = Math.max(6, Math.min(60, rowH * (ev.deltaY < 0 ? 1.15 : 0.87)));
    layout();
  }, { passive: false });
  zoomIn.addEventListener("click", () => { rowH = Math.min(60, rowH * 1.25); laneW = Math.min(320, laneW * 1.15); layout(); });
  zoomOut.addEventListener("click", () => { rowH = Math.max(6, rowH * 0.8); laneW = Math.max(60, laneW * 0.87); layout(); });
  // drag to pan
  let drag = null;
  viewport.addEventListener("mousedown", (ev) => { drag = { x: ev.clientX, y: ev.clientY, l: viewport.scrollLeft, t: viewport.scrollTop }; });
  window.addEventListener("mouseup", () => { drag = null; });
  viewport.addEventListener("mousemove", (ev) => {
    if (!drag || ev.buttons !== 1) return;
    viewport.scrollLeft = drag.l - (ev.clientX - drag.x); viewport.scrollTop = drag.t - (ev.clientY - drag.y);
  });
  showAll.addEventListener("click", () => { model.set("hidden", []); model.save_changes(); });
  filter.value = model.get("filter") || "";
  filter.addEventListener("input", () => { model.set("filter", filter.value); model.save_changes(); });
  for (const name of ["lanes", "msgs", "hidden", "filter", "row_filter"]) model.on(`change:${name}`, rebuild);
  model.on("change:selected", paint);
  model.on("change:cursor", () => {
    const c = model.get("cursor");
    const r = rows.findIndex((i) => msgs.seq[i] >= c);
    if (r >= 0) {
      const y = HEADER + r * rowH;
      if (y < viewport.scrollTop + HEADER || y > viewport.scrollTop + viewport.clientHeight - rowH) viewport.scrollTop = y - viewport.clientHeight / 2;
    }
    paint();
  });
  const t0 = performance.now();
  rebuild();
  el.dataset.firstRenderMs = (performance.now() - t0).toFixed(1);
  requestAnimationFrame(() => { layout(); el.dataset.ready = "1"; });
  return () => root.remove();
}

export default { render };
