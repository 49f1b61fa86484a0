// Timeline: process lifetimes, callback durations, GC, mailbox length, in SVG.
// Model:
//   lanes: [{id, label, start, end, exited}]       (ms since the recording began)
//   handlers: [[lane, start, duration]]   gcs: [[lane, t]]   mailbox: [[lane, t, len]]
//   span: total ms
import { h, palette, ui, injectStyle, baseCss } from "./common.js";

const NS = "http://www.w3.org/2000/svg";
const LANE = 26, LEFT = 160;

function s(tag, attrs = {}, text) {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  if (text !== undefined) el.textContent = text;
  return el;
}

function render({ model, el }) {
  const root = h("div", { class: "mic mic-timeline" });
  injectStyle(root, baseCss + `.mic-timeline .body { overflow: auto; max-height: 420px; }`);
  const info = h("span", { class: "muted" });
  const body = h("div", { class: "body" });
  root.append(h("div", { class: "bar" }, h("b", {}, "Timeline"), info,
    h("span", { class: "muted" }, "bars: alive · ticks: callbacks · dots: GC · line: mailbox")), body);
  el.append(root);

  function draw() {
    const lanes = model.get("lanes") || [];
    const span = Math.max(1e-6, model.get("span") || 1);
    const width = Math.max(600, (body.clientWidth || 800) - 10);
    const x = (t) => LEFT + (t / span) * (width - LEFT - 10);
    const svg = s("svg", { width, height: 24 + lanes.length * LANE, class: "timeline-svg" });
    for (let k = 0; k <= 4; k++) {
      const t = (span * k) / 4;
      svg.append(s("text", { x: x(t), y: 12, "font-size": 10, fill: "#5f6368",
        "text-anchor": k === 0 ? "start" : k === 4 ? "end" : "middle" }, `${t.toFixed(1)} ms`));
    }
    lanes.forEach((l, i) => {
      const y = 20 + i * LANE;
      svg.append(s("text", { x: 4, y: y + 14, "font-size": 11, fill: "#202124" }, String(l.label).slice(0, 24)));
      svg.append(s("rect", { x: x(l.start), y: y + 6, width: Math.max(2, x(l.end ?? span) - x(l.start)), height: 10,
        fill: l.exited ? ui.lifetime_exited : ui.lifetime, rx: 3 }));
      if (l.exited) svg.append(s("text", { x: x(l.end) - 4, y: y + 15, "font-size": 11, fill: palette.crash }, "✖"));
    });
    for (const [lane, start, dur] of model.get("handlers") || []) {
      const y = 20 + lane * LANE;
      svg.append(s("rect", { x: x(start), y: y + 3, width: Math.max(1, x(start + dur) - x(start)), height: 16, fill: ui.handler, opacity: 0.55 }));
    }
    for (const [lane, t] of model.get("gcs") || []) {
      svg.append(s("circle", { cx: x(t), cy: 20 + lane * LANE + 11, r: 2.5, fill: ui.gc }));
    }
    const byLane = new Map();
    for (const [lane, t, len] of model.get("mailbox") || []) {
      if (!byLane.has(lane)) byLane.set(lane, []);
      byLane.get(lane).push([t, len]);
    }
    for (const [lane, pts] of byLane) {
      const top = Math.max(1, ...pts.map((p) => p[1]));
      if (top < 2) continue;  // a mailbox that never held two messages is not worth a line
      const y0 = 20 + lane * LANE + 22;
      svg.append(s("polyline", { points: pts.map(([t, len]) => `${x(t)},${y0 - (len / top) * 18}`).join(" "),
        fill: "none", stroke: ui.mailbox, "stroke-width": 1.2 }));
    }
    body.replaceChildren(svg);
    info.textContent = `${lanes.length} processes over ${span.toFixed(1)} ms`;
  }
  for (const name of ["lanes", "handlers", "gcs", "mailbox", "span"]) model.on(`change:${name}`, draw);
  draw();
  return () => root.remove();
}

export default { render };
