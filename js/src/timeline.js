// Timeline: a track view in the manner of Perfetto / Chrome DevTools, on a
// canvas. One track per process: its life from birth to death (an abnormal
// death in red, with the reason on hover), callbacks and traced calls as
// duration bars, GC as dots, the node's log lines as ticks (red from error
// up, amber for warnings; the line on hover); under it a mailbox track with a real y axis
// from the node's queue samples. Gaps between recordings are gaps. Wheel
// with ctrl (or w/s) zooms, drag pans, shift+drag (or a drag on the time
// axis) selects a range and sums it up; a click moves the shared cursor.
// Model:
//   lanes: [{id, label, start, end, born, exited, abnormal, reason}]     (ms since the recording began)
//   handlers: [[lane, start, dur, callback]]   calls: [[lane, start, dur, mfa]]   callbacks, mfas: [label]
//   gcs: [[lane, t]]    mailbox: [[lane, t, len]]    gaps: [[start, end]]    span: total ms
//   logs: [[lane, t, level, seq, text]]   level 0 emergency .. 3 error, 4 warning .. 7 debug
//   marks: [{seq, t_ms, lane, severity, text}]     cursor: seq    cursor_ms: where it is (Python)
//   Python answers {event: "seek_ms", ms} by moving the cursor to the event at that time.
import { h, palette, ui, legend, injectStyle, baseCss, themeColours, tooltip, onResize, niceStep, upperBound, notesStrip, onThemeChange, labelPlacer } from "./common.js";

const LEFT = 170, AXIS = 26, TRACK = 24, MAILBOX = 34;

function render({ model, el }) {
  const root = h("div", { class: "mic mic-timeline" });
  injectStyle(root, baseCss + `
    .mic-timeline .viewport { height: 420px; overflow-y: auto; overflow-x: hidden; position: relative; outline: none; }
    .mic-timeline canvas { position: sticky; top: 0; left: 0; display: block; }
    .mic-timeline .summary { padding: 4px 8px; border-top: 1px solid var(--mic-line); white-space: pre-wrap; }
    .mic-timeline .summary:empty { display: none; }`);
  const info = h("span", { class: "muted info" });
  const zoomIn = h("button", { class: "zoom-in", title: "zoom in (w, ctrl+wheel)" }, "+");
  const zoomOut = h("button", { class: "zoom-out", title: "zoom out (s)" }, "−");
  const fit = h("button", { class: "fit", title: "the whole recording (f)" }, "fit");
  const key = h("span", { class: "muted" }, "bars: callbacks, calls · dots: GC · ticks: log lines · hatched: not recording · ",
    legend(["crashed", "exited"]));      // every widget's vocabulary
  const viewport = h("div", { class: "viewport", tabindex: "0" });
  const canvas = h("canvas");
  const spacer = h("div", { class: "spacer" });
  viewport.append(canvas, spacer);
  const summary = h("div", { class: "summary mono" });
  const empty = h("div", { class: "empty", style: { display: "none" } }, "nothing recorded yet: record with s.trace() and refresh()");
  root.append(h("div", { class: "bar" }, h("b", {}, "Timeline"), zoomOut, zoomIn, fit, info, key), empty, viewport, summary);
  const tip = tooltip(root);
  root.append(notesStrip(model));   // annotations (s.annotate)
  el.append(root);
  const ctx = canvas.getContext("2d");

  let lanes = [], tracks = [], byLane = [], span = 1, v0 = 0, v1 = 1, brush = null, colours = themeColours(root), fitted = false;

  function rebuild() {
    lanes = model.get("lanes") || [];
    span = Math.max(1e-6, model.get("span") || 1);
    // per lane: bars sorted by start (callbacks and calls), GC times, mailbox points
    byLane = lanes.map(() => ({ bars: [], starts: null, maxDur: 0, gcs: [], mailbox: [], logs: [] }));
    const cb = model.get("callbacks") || [], mfas = model.get("mfas") || [];
    for (const [l, s, d, c] of model.get("handlers") || []) byLane[l] && byLane[l].bars.push([s, d, "callback", cb[c] ?? c]);
    for (const [l, s, d, m] of model.get("calls") || []) byLane[l] && byLane[l].bars.push([s, d, "call", mfas[m] ?? m]);
    for (const [l, t] of model.get("gcs") || []) byLane[l] && byLane[l].gcs.push(t);
    for (const [l, t, level, seq, text] of model.get("logs") || []) byLane[l] && byLane[l].logs.push({ t, level, seq, text });
    for (const [l, t, n] of model.get("mailbox") || []) byLane[l] && byLane[l].mailbox.push([t, n]);
    for (const b of byLane) {
      b.bars.sort((p, q) => p[0] - q[0]);
      b.starts = Float64Array.from(b.bars, (x) => x[0]);
      for (const x of b.bars) b.maxDur = Math.max(b.maxDur, x[1]);
      b.peak = Math.max(0, ...b.mailbox.map((p) => p[1]));
    }
    // track layout: a lane, and a mailbox track under it when its queue ever held 2
    tracks = [];
    let y = AXIS;
    lanes.forEach((l, i) => {
      tracks.push({ lane: i, kind: "life", y, hgt: TRACK }); y += TRACK;
      if (byLane[i].peak >= 2) { tracks.push({ lane: i, kind: "mailbox", y, hgt: MAILBOX }); y += MAILBOX; }
    });
    spacer.style.height = `${y + 8}px`;
    empty.style.display = lanes.length ? "none" : "block";
    spacer.style.marginTop = `-${viewport.clientHeight || 420}px`;
    if (!fitted) { v0 = 0; v1 = span; fitted = true; }
    paint();
  }

  const width = () => viewport.clientWidth || 800;
  const xOf = (t) => LEFT + ((t - v0) / (v1 - v0)) * (width() - LEFT - 10);
  const tOf = (x) => v0 + ((x - LEFT) / (width() - LEFT - 10)) * (v1 - v0);
  const fmt = (ms) => Math.abs(ms) >= 1000 ? `${(ms / 1000).toFixed(ms >= 10000 ? 1 : 2)} s`
    : Math.abs(ms) >= 1 ? `${ms.toFixed(ms >= 100 ? 0 : ms >= 10 ? 1 : 2)} ms` : `${Math.round(ms * 1000)} µs`;

  function paint() {
    const t0 = performance.now();
    colours = themeColours(root);
    const w = width(), hgt = viewport.clientHeight || 420, dpr = window.devicePixelRatio || 1;
    if (canvas.width !== Math.round(w * dpr) || canvas.height !== Math.round(hgt * dpr)) {
      canvas.width = Math.round(w * dpr); canvas.height = Math.round(hgt * dpr);
      canvas.style.width = `${w}px`; canvas.style.height = `${hgt}px`;
    }
    const top = viewport.scrollTop;
    ctx.setTransform(dpr, 0, 0, dpr, 0, -top * dpr);
    ctx.fillStyle = colours.bg; ctx.fillRect(0, top, w, hgt);
    const bottom = top + hgt;
    ctx.save(); ctx.beginPath(); ctx.rect(LEFT, top + AXIS, w - LEFT, hgt - AXIS); ctx.clip();
    for (const tr of tracks) {
      if (tr.y + tr.hgt < top + AXIS || tr.y > bottom) continue;
      if (tr.kind === "life") paintLife(tr, w); else paintMailbox(tr, w);
    }
    // gaps between recordings: hatched over every track, so no life runs through them
    for (const [a, b] of model.get("gaps") || []) {
      const x1 = Math.max(LEFT, xOf(a)), x2 = Math.min(w, xOf(b));
      if (x2 <= x1) continue;
      ctx.save(); ctx.beginPath(); ctx.rect(x1, top + AXIS, x2 - x1, hgt - AXIS); ctx.clip();
      ctx.fillStyle = colours.panel; ctx.globalAlpha = 0.9; ctx.fillRect(x1, top, x2 - x1, hgt); ctx.globalAlpha = 1;
      ctx.strokeStyle = colours.line; ctx.lineWidth = 1;
      for (let x = x1 - hgt; x < x2; x += 8) { ctx.beginPath(); ctx.moveTo(x, bottom); ctx.lineTo(x + hgt, top); ctx.stroke(); }
      ctx.restore();
    }
    // brush and cursor
    if (brush) {
      const x1 = xOf(Math.min(brush.a, brush.b)), x2 = xOf(Math.max(brush.a, brush.b));
      ctx.fillStyle = colours.cursor; ctx.fillRect(x1, top, Math.max(1, x2 - x1), hgt);
    }
    const cms = model.get("cursor_ms");
    if (cms !== null && cms !== undefined && cms >= v0 && cms <= v1) {
      ctx.strokeStyle = colours.accent; ctx.lineWidth = 1.5;
      ctx.beginPath(); ctx.moveTo(xOf(cms), top); ctx.lineTo(xOf(cms), bottom); ctx.stroke();
    }
    ctx.restore();
    // labels column
    ctx.fillStyle = colours.panel; ctx.fillRect(0, top, LEFT - 4, hgt);
    ctx.font = "11px sans-serif"; ctx.textBaseline = "middle";
    for (const tr of tracks) {
      if (tr.y + tr.hgt < top + AXIS || tr.y > bottom) continue;
      const l = lanes[tr.lane];
      if (tr.kind === "life") {
        ctx.fillStyle = colours.text; ctx.fillText(String(l.label).slice(0, 26), 6, tr.y + TRACK / 2);
      } else {
        ctx.fillStyle = colours.muted; ctx.fillText("mailbox", 14, tr.y + MAILBOX / 2);
        ctx.textAlign = "right"; ctx.font = "9px sans-serif";
        ctx.fillText(String(byLane[tr.lane].peak), LEFT - 8, tr.y + 5); ctx.fillText("0", LEFT - 8, tr.y + MAILBOX - 4);
        ctx.textAlign = "left"; ctx.font = "11px sans-serif";
      }
      ctx.strokeStyle = colours.faint; ctx.beginPath(); ctx.moveTo(0, tr.y + tr.hgt - 0.5); ctx.lineTo(w, tr.y + tr.hgt - 0.5); ctx.stroke();
    }
    paintAxis(top, w);
    ctx.textBaseline = "alphabetic";
    el.dataset.view = `${v0},${v1}`;
    el.dataset.frameMs = (performance.now() - t0).toFixed(2);
  }

  function paintLife(tr, w) {
    const l = lanes[tr.lane], y = tr.y, b = byLane[tr.lane];
    const start = l.start ?? 0, end = l.end ?? span;
    const x1 = Math.max(LEFT, xOf(start)), x2 = Math.min(w, xOf(end));
    if (x2 > x1) {
      ctx.fillStyle = l.exited && l.abnormal ? ui.lifetime_exited : ui.lifetime;
      ctx.globalAlpha = 0.7; ctx.fillRect(x1, y + 9, x2 - x1, 6); ctx.globalAlpha = 1;
    }
    if (l.born && start >= v0 && start <= v1) {     // birth: a small bar across the track
      ctx.fillStyle = palette.alive; ctx.fillRect(xOf(start) - 1, y + 4, 2, TRACK - 8);
    }
    // duration bars in view, at most one per pixel column, as one path per
    // kind (a canvas state change per bar costs more than the bar)
    const hi = upperBound(b.starts, v1);
    const scale = (w - LEFT - 10) / (v1 - v0);
    const paths = { callback: new Path2D(), call: new Path2D() };
    let lastX = -1;
    for (let k = hi - 1; k >= 0 && b.starts[k] >= v0 - b.maxDur; k--) {
      const bar = b.bars[k], s = bar[0], d = bar[1];
      if (s + d < v0) continue;
      const bx = Math.max(LEFT, LEFT + (s - v0) * scale), bw = Math.max(1, Math.min(w, LEFT + (s + d - v0) * scale) - bx);
      const col = bx | 0;
      if (bw < 1.5 && col === lastX) continue;
      lastX = col;
      if (bar[2] === "call") paths.call.rect(bx, y + 14, bw, 6); else paths.callback.rect(bx, y + 4, bw, 10);
    }
    ctx.globalAlpha = 0.75;
    ctx.fillStyle = ui.handler; ctx.fill(paths.callback);
    ctx.fillStyle = palette.cast; ctx.fill(paths.call);
    ctx.globalAlpha = 1;
    ctx.fillStyle = ui.gc;
    for (const t of b.gcs) if (t >= v0 && t <= v1) { ctx.beginPath(); ctx.arc(xOf(t), y + TRACK - 4, 2, 0, 7); ctx.fill(); }
    for (const g of b.logs) {
      if (g.t < v0 || g.t > v1) continue;
      ctx.fillStyle = logColour(g.level);
      ctx.fillRect(xOf(g.t) - 1, y + 15, 2, TRACK - 17);
    }
    if (l.exited && l.end !== null && l.end !== undefined && l.end >= v0 && l.end <= v1) {
      const x = xOf(l.end);
      if (l.abnormal) { ctx.fillStyle = colours.crash; ctx.font = "bold 13px sans-serif"; ctx.textAlign = "center"; ctx.fillText("✖", x, y + 13); ctx.textAlign = "left"; ctx.font = "11px sans-serif"; }
      else { ctx.fillStyle = palette.exited; ctx.font = "bold 13px sans-serif"; ctx.textAlign = "center"; ctx.fillText("◌", x, y + 13); ctx.textAlign = "left"; ctx.font = "11px sans-serif"; }
    }
    for (const m of model.get("marks") || []) {
      if (m.lane !== tr.lane || m.t_ms < v0 || m.t_ms > v1) continue;
      const x = xOf(m.t_ms);
      ctx.fillStyle = m.severity === "error" ? colours.crash : m.severity === "warning" ? "#f9ab00" : m.severity === "note" ? ui.note : colours.accent;
      ctx.beginPath(); ctx.moveTo(x - 5, y); ctx.lineTo(x + 5, y); ctx.lineTo(x, y + 7); ctx.fill();
    }
  }

  function logColour(level) {
    return level <= 3 ? colours.crash : level === 4 ? "#f9ab00" : colours.muted;
  }
  const LEVELS = ["emergency", "alert", "critical", "error", "warning", "notice", "info", "debug"];
  function logAt(tr, t, tol) {
    let best = null;
    for (const g of byLane[tr.lane].logs) if (Math.abs(g.t - t) < tol && (!best || g.level < best.level)) best = g;
    return best;
  }

  function paintMailbox(tr, w) {
    const b = byLane[tr.lane], y = tr.y, peak = Math.max(1, b.peak);
    const yv = (n) => y + MAILBOX - 3 - (n / peak) * (MAILBOX - 8);
    ctx.strokeStyle = colours.faint; ctx.beginPath(); ctx.moveTo(LEFT, yv(peak)); ctx.lineTo(w, yv(peak)); ctx.stroke();
    ctx.strokeStyle = ui.mailbox; ctx.fillStyle = "rgba(227,116,0,0.18)"; ctx.lineWidth = 1.2;
    ctx.beginPath();
    let started = false, last = 0, lastX = LEFT;
    for (const [t, n] of b.mailbox) {      // a step function: the length holds until the next sample
      const x = Math.max(LEFT, Math.min(w, xOf(t)));
      if (!started) { ctx.moveTo(x, yv(0)); started = true; }
      ctx.lineTo(x, yv(last)); ctx.lineTo(x, yv(n)); last = n; lastX = x;
    }
    const end = Math.min(w, xOf(lanes[tr.lane].end ?? span));
    if (started) { ctx.lineTo(Math.max(lastX, end), yv(last)); ctx.stroke(); ctx.lineTo(Math.max(lastX, end), yv(0)); ctx.fill(); }
  }

  function paintAxis(top, w) {
    ctx.fillStyle = colours.panel; ctx.fillRect(0, top, w, AXIS);
    ctx.strokeStyle = colours.line; ctx.beginPath(); ctx.moveTo(0, top + AXIS - 0.5); ctx.lineTo(w, top + AXIS - 0.5); ctx.stroke();
    // a tick every ~80 px, however narrow; a label only where it fits whole
    const step = niceStep((v1 - v0) / Math.max(1, (w - LEFT) / 80));
    const labels = labelPlacer(ctx, { x0: 0, y0: top, x1: w, y1: top + AXIS });
    ctx.font = "10px sans-serif"; ctx.textAlign = "left";
    ctx.fillStyle = colours.text; labels.place(`${fmt(v1 - v0)} in view`, 6, top + 13, LEFT - 12);
    ctx.fillStyle = colours.muted;
    for (let t = Math.ceil(v0 / step) * step; t <= v1; t += step) {
      const x = xOf(t);
      ctx.beginPath(); ctx.moveTo(x, top + AXIS - 6); ctx.lineTo(x, top + AXIS); ctx.stroke();
      labels.place(fmt(t), x, top + 13, 80, "center");
    }
  }

  // -- interaction
  function clampView(a, b) {
    const width_ = Math.max(Math.min(b - a, span * 1.05), span / 1e6, 1e-6);
    let s = Math.max(-span * 0.025, Math.min(a, span * 1.025 - width_));
    v0 = s; v1 = s + width_;
  }
  function zoom(factor, atX = null) {
    const t = atX === null ? (v0 + v1) / 2 : tOf(atX);
    clampView(t - (t - v0) / factor, t + (v1 - t) / factor);
    paint();
  }
  function trackAt(y) { return tracks.find((tr) => y >= tr.y && y < tr.y + tr.hgt); }
  function barAt(tr, t, px) {
    const b = byLane[tr.lane], tol = px * (v1 - v0) / (width() - LEFT - 10);
    const hi = upperBound(b.starts, t + tol);
    for (let k = hi - 1; k >= 0 && b.starts[k] >= t - b.maxDur - tol; k--) {
      const [s, d] = b.bars[k];
      if (s - tol <= t && t <= s + d + tol) return b.bars[k];
    }
    return null;
  }
  function pointer(ev) {
    const rect = viewport.getBoundingClientRect();
    return { x: ev.clientX - rect.left, y: ev.clientY - rect.top + viewport.scrollTop, vy: ev.clientY - rect.top };
  }
  function describe(p) {
    if (p.x < LEFT || p.vy < AXIS) return null;
    const tr = trackAt(p.y);
    if (!tr) return null;
    const l = lanes[tr.lane], t = tOf(p.x), b = byLane[tr.lane];
    if (tr.kind === "mailbox") {
      let n = 0;
      for (const [pt, len] of b.mailbox) { if (pt > t) break; n = len; }
      return `${l.label} · mailbox ${n} at ${fmt(t)}`;
    }
    const tol = 6 * (v1 - v0) / (width() - LEFT - 10);
    if (l.exited && l.end !== null && Math.abs(t - l.end) < tol) return `${l.label} · ${l.abnormal ? "crashed" : "exited"} at ${fmt(l.end)}\n${l.reason || ""}`;
    for (const m of model.get("marks") || []) if (m.lane === tr.lane && Math.abs(t - m.t_ms) < tol) return `${m.severity}: ${m.text}`;
    const logged = logAt(tr, t, tol);
    if (logged) return `${l.label} · logged at ${fmt(logged.t)} (${LEVELS[logged.level] || logged.level})\n${logged.text}`;
    const bar = barAt(tr, t, 2);
    if (bar) return `${l.label} · ${bar[3]} · ${fmt(bar[1])}\nat ${fmt(bar[0])}`;
    if (l.born && Math.abs(t - l.start) < tol) return `${l.label} · born at ${fmt(l.start)}`;
    return `${l.label}${l.id !== l.label ? " " + l.id : ""} · ${fmt(t)}`;
  }

  function summarise(a, b) {
    const lo = Math.min(a, b), hi = Math.max(a, b);
    const groups = new Map();
    byLane.forEach((bl, i) => {
      for (const [s, d, kind, label] of bl.bars) {
        if (s < lo || s > hi) continue;
        const key = `${lanes[i].label} · ${label}`;
        if (!groups.has(key)) groups.set(key, []);
        groups.get(key).push(d);
      }
    });
    const lines = [...groups.entries()].sort((p, q) => q[1].length - p[1].length).slice(0, 8).map(([k, ds]) => {
      ds.sort((x, y) => x - y);
      const p = (q) => ds[Math.min(ds.length - 1, Math.floor(q * ds.length))];
      const total = ds.reduce((x, y) => x + y, 0);
      return `${k}: ${ds.length} calls, p50 ${fmt(p(0.5))}, p99 ${fmt(p(0.99))}, busy ${fmt(total)} (${Math.round((100 * total) / Math.max(hi - lo, 1e-9))}%)`;
    });
    summary.textContent = `${fmt(lo)} – ${fmt(hi)} (${fmt(hi - lo)}):` + (lines.length ? "\n" + lines.join("\n") : " no callbacks or calls");
  }

  let drag = null;
  viewport.addEventListener("mousedown", (ev) => {
    if (ev.button !== 0) return;
    const p = pointer(ev);
    const selecting = ev.shiftKey || p.vy < AXIS;
    drag = { x: p.x, v0, v1, selecting, moved: false, t: tOf(p.x) };
    if (selecting) brush = { a: drag.t, b: drag.t };
  });
  window.addEventListener("mouseup", () => {
    if (drag && drag.selecting && drag.moved && brush) summarise(brush.a, brush.b);
    setTimeout(() => { drag = null; }, 0);
  });
  viewport.addEventListener("mousemove", (ev) => {
    const p = pointer(ev);
    if (drag && ev.buttons === 1) {
      if (Math.abs(p.x - drag.x) > 3) drag.moved = true;
      if (drag.moved) {
        if (drag.selecting) brush.b = tOf(p.x);
        else { const dt = ((p.x - drag.x) / (width() - LEFT - 10)) * (drag.v1 - drag.v0); clampView(drag.v0 - dt, drag.v1 - dt); }
        tip.hide(); paint(); return;
      }
    }
    const text = describe(p);
    if (text) tip.show(ev, text); else tip.hide();
  });
  viewport.addEventListener("mouseleave", () => tip.hide());
  viewport.addEventListener("click", (ev) => {
    if (drag && drag.moved) return;
    const p = pointer(ev);
    if (p.x < LEFT || p.vy < AXIS) return;
    brush = null; summary.textContent = "";
    // a finding's mark: straight to its evidence
    const tr = trackAt(p.y), tol = 6 * (v1 - v0) / (width() - LEFT - 10), t = tOf(p.x);
    const mark = tr && (model.get("marks") || []).find((m) => m.lane === tr.lane && Math.abs(m.t_ms - t) < tol);
    if (mark) { model.set("cursor", mark.seq); model.save_changes(); return; }
    const logged = tr && tr.kind === "life" && logAt(tr, t, tol);
    if (logged) { model.set("cursor", logged.seq); model.save_changes(); return; }
    model.send({ event: "seek_ms", ms: t });
  });
  viewport.addEventListener("wheel", (ev) => {
    if (!ev.ctrlKey) return;
    ev.preventDefault();
    zoom(ev.deltaY < 0 ? 1.25 : 0.8, pointer(ev).x);
  }, { passive: false });
  viewport.addEventListener("keydown", (ev) => {
    const k = ev.key.toLowerCase(), pan = (v1 - v0) * 0.2;
    if (k === "w" || k === "+" || k === "=") zoom(1.25);
    else if (k === "s" || k === "-") zoom(0.8);
    else if (k === "a") { clampView(v0 - pan, v1 - pan); paint(); }
    else if (k === "d") { clampView(v0 + pan, v1 + pan); paint(); }
    else if (k === "f") { v0 = 0; v1 = span; paint(); }
    else return;
    ev.preventDefault(); ev.stopPropagation();
  });
  zoomIn.addEventListener("click", () => zoom(1.5));
  zoomOut.addEventListener("click", () => zoom(1 / 1.5));
  fit.addEventListener("click", () => { v0 = 0; v1 = span; paint(); });
  viewport.addEventListener("scroll", () => requestAnimationFrame(paint));
  for (const name of ["lanes", "handlers", "calls", "gcs", "logs", "mailbox", "span", "gaps"]) model.on(`change:${name}`, rebuild);
  for (const name of ["cursor_ms", "marks"]) model.on(`change:${name}`, paint);
  const stopResize = onResize(viewport, () => { spacer.style.marginTop = `-${viewport.clientHeight || 420}px`; paint(); });
  const stopTheme = onThemeChange(() => paint());   // canvas colours are read at each paint
  const t0 = performance.now();
  rebuild();
  el.dataset.firstRenderMs = (performance.now() - t0).toFixed(1);
  info.textContent = `${lanes.length} processes over ${fmt(span)}`;
  model.on("change:lanes", () => { info.textContent = `${lanes.length} processes over ${fmt(span)}`; });
  requestAnimationFrame(() => { paint(); el.dataset.ready = "1"; });
  return () => { stopResize(); stopTheme(); root.remove(); };
}

export default { render };
