// SequenceDiagram: lifelines across, messages down, drawn on a canvas, only
// what is in view. Two modes: compact (one row per message) and time (the
// vertical axis is time: each arrow runs from its send to the moment it was
// handled, so a message that waited in a backlog slopes down; callbacks are
// activation bars; a receiver's queue depth is a band beside its lifeline).
// Stays fluid at 50k messages. Labels never print over each other (a label
// with no room is left to the tooltip); time mode opens on the whole
// recording (or, past ~400 messages, on its start at a scale that shows ~400
// at once), its lanes fitted to the width and fitted again when it changes.
// Model:
//   lanes: [{id, label}]
//   msgs: {from:[lane], to:[lane|-1], seq:[], recv_seq:[], kind:[], status:[], latency_us:[],
//          wait_us:[], text:[], label:[], send_us:[], end_us:[], pair:[]}
//          pair: a call's reply, a reply's call (row index, -1 none): hovering one lights both
//          send_us / end_us: µs since the first message; end is when it was handled (the
//          callback that took it began), else received, else null (lost, in flight)
//   activations: [[lane, start_us, dur_us, callback]]     queue: [[lane, t_us, len]]
//   crashes: [{lane, row, t_us, text, abnormal}]  (drawn after the message row it follows)
//   marks: [{seq, t_us, lane, severity, text}]    findings, in the left margin
//   mode: "compact" | "time"
//   selected: seq of the clicked message (-1 none)    cursor: seq (linked to TimeTravel)
//   filter: text filter      hidden: [lane ids]       row_filter: [row indices] or null
import { h, input, palette, ui, legend, injectStyle, baseCss, themeColours, tooltip, onResize,
         fmtUs, niceStep, upperBound, notesStrip, labelPlacer, onThemeChange } from "./common.js";

const HEADER = 34, LEFT = 84, PAD = 12;
const DEFAULTS = { rowH: 22, laneW: 150 };

function render({ model, el }) {
  const root = h("div", { class: "mic mic-seq" });
  injectStyle(root, baseCss + `
    .mic-seq .viewport { height: 420px; overflow: auto; position: relative; outline: none; }
    .mic-seq .viewport:focus-visible { box-shadow: inset 0 0 0 2px var(--mic-accent); }
    .mic-seq canvas { position: sticky; top: 0; left: 0; display: block; }
    .mic-seq .legend > span { margin-right: 10px; }
    .mic-seq button.on { background: var(--mic-cursor); }`);
  const filter = input({ type: "search", placeholder: "filter messages (text)…", class: "filter" });
  const btn = (cls, title, text) => h("button", { class: cls, title }, text);
  const modeBtn = btn("mode", "time on the vertical axis: arrows from send to handling (t)", "time");
  const zoomOut = btn("zoom-out", "zoom out (−)", "−"), zoomIn = btn("zoom-in", "zoom in (+)", "+");
  const fit = btn("fit", "fit everything in view (f)", "fit"), reset = btn("reset", "reset zoom (0)", "reset");
  const showAll = btn("show-all", "show every process again", "show all");
  const info = h("span", { class: "muted info" });
  const key = legend(["call", "reply", "cast", "info", "lost", "crashed", "exited"]);   // every widget's vocabulary
  const viewport = h("div", { class: "viewport", tabindex: "0", role: "application",
                              "aria-label": "sequence diagram: arrow keys move between messages" });
  const spacer = h("div", { class: "spacer" });
  const canvas = h("canvas");
  viewport.append(canvas, spacer);
  const empty = h("div", { class: "empty", style: { display: "none" } });
  root.append(h("div", { class: "bar" }, filter, modeBtn, zoomOut, zoomIn, fit, reset, showAll, key, info), empty, viewport);
  const tip = tooltip(root);
  root.append(notesStrip(model));   // annotations (s.annotate)
  el.append(root);
  const ctx = canvas.getContext("2d");

  let lanes = [], laneIndex = new Map(), msgs = null, rows = [], rowSend = null, rowEnd = null;
  let rowH = DEFAULTS.rowH, laneW = DEFAULTS.laneW, scale = 0.01, span = 0, maxDur = 0;
  let hover = -1, drawn = [], colours = themeColours(root), scaled = false;
  let fitted = false, timeOpened = false, bandW = new Map(), labels = null, drawnAt = new Map();   // fitted: lanes follow the width
  const mode = () => model.get("mode") === "time" ? "time" : "compact";

  // -- geometry: one source for headers, lifelines, arrows and hit tests
  const laneX = (orig) => { const k = laneIndex.get(orig); return k === undefined ? undefined : LEFT + k * laneW + laneW / 2; };
  const contentHeight = () => mode() === "time" ? HEADER + PAD * 2 + span * scale : HEADER + rows.length * rowH + 20;
  const yOfTime = (t) => HEADER + PAD + t * scale;                 // content coordinates
  const yOfRow = (r) => HEADER + r * rowH + rowH / 2;

  function rebuild() {
    const all = model.get("lanes") || [];
    const hidden = new Set(model.get("hidden") || []);
    laneIndex = new Map();
    lanes = [];
    all.forEach((l, i) => { if (!hidden.has(l.id)) { laneIndex.set(i, lanes.length); lanes.push(l); } });
    msgs = model.get("msgs") || { from: [], to: [], seq: [], text: [] };
    const q = (model.get("filter") || "").toLowerCase();
    const only = model.get("row_filter");
    const allowed = only ? new Set(only) : null;
    rows = [];
    const n = (msgs.seq || []).length;
    for (let i = 0; i < n; i++) {
      if (allowed && !allowed.has(i)) continue;
      if (!laneIndex.has(msgs.from[i]) && !laneIndex.has(msgs.to[i])) continue;
      if (q && !String(msgs.text[i]).toLowerCase().includes(q)) continue;
      rows.push(i);
    }
    const send = msgs.send_us || [], end = msgs.end_us || [];
    rowSend = new Float64Array(rows.length); rowEnd = new Float64Array(rows.length);
    span = 0; maxDur = 0;
    rows.forEach((i, r) => {
      const s = send[i] ?? 0, e = end[i] ?? s;
      rowSend[r] = s; rowEnd[r] = Math.max(s, e);
      span = Math.max(span, rowEnd[r]); maxDur = Math.max(maxDur, rowEnd[r] - s);
    });
    for (const a of model.get("activations") || []) span = Math.max(span, a[1] + a[2]);
    // sends are in order already; guard the binary search if a producer is not
    for (let r = 1; r < rows.length; r++) if (rowSend[r] < rowSend[r - 1]) { rowSend[r] = rowSend[r - 1]; }
    if (!scaled) { resetZoom(false); scaled = true; }
    layout();
  }

  function resetZoom(draw = true) {
    rowH = DEFAULTS.rowH; laneW = DEFAULTS.laneW; fitted = false;
    // time mode: the median gap between sends gets one row's height
    const gaps = [];
    for (let r = 1; r < rows.length && gaps.length < 2000; r++) if (rowSend[r] > rowSend[r - 1]) gaps.push(rowSend[r] - rowSend[r - 1]);
    gaps.sort((a, b) => a - b);
    const median = gaps.length ? gaps[gaps.length >> 1] : Math.max(1, span / 20);
    scale = clampScale(DEFAULTS.rowH / Math.max(median, 1e-3));
    if (draw) layout();
  }

  // Browsers cap an element's height (~16M px): keep the content under it.
  const clampScale = (s) => Math.max(1e-7, Math.min(s, 8e6 / Math.max(span, 1), 50));

  const fitLanes = () => { laneW = Math.max(60, Math.min(320, ((viewport.clientWidth || 800) - LEFT - 20) / Math.max(1, lanes.length))); };
  const fitScale = () => clampScale(((viewport.clientHeight || 420) - HEADER - PAD * 2 - 4) / Math.max(span, 1));
  function fitAll() {
    const hgt = viewport.clientHeight || 420;
    fitLanes(); fitted = true;
    if (mode() === "time") scale = fitScale();
    else rowH = Math.max(2, Math.min(60, (hgt - HEADER - 24) / Math.max(1, rows.length)));
    layout();
  }

  // The first look at time mode: the whole recording, unless that crowds more
  // than ~400 arrows into one screen (then its start, at the scale that shows ~400:
  // more is a blur to read and, at 50k, slower than a frame to pan).
  function openTime() {
    timeOpened = true; fitted = true;
    fitLanes();
    scale = clampScale(fitScale() * Math.max(1, rows.length / 400));
    viewport.scrollTop = 0;
  }

  function zoom(factor, anchorY = null) {
    // keep the content under the pointer (or the view's middle) where it is
    const hgt = viewport.clientHeight || 420;
    const ay = anchorY ?? hgt / 2;
    const before = viewport.scrollTop + ay;
    const oldH = contentHeight();
    if (mode() === "time") scale = clampScale(scale * factor);
    else rowH = Math.max(2, Math.min(60, rowH * factor));
    laneW = Math.max(60, Math.min(320, laneW * Math.sqrt(factor))); fitted = false;
    layout(false);
    viewport.scrollTop = Math.max(0, before * contentHeight() / oldH - ay);
    paint();
  }

  function layout(draw = true) {
    if (mode() === "time" && !timeOpened && rows.length) openTime();
    if (fitted) fitLanes();       // a resize (a split view, the sidebar) fits them again
    const width = Math.max(viewport.clientWidth || 800, LEFT + lanes.length * laneW + 40);
    const hgt = viewport.clientHeight || 420;
    spacer.style.height = `${contentHeight()}px`;
    spacer.style.width = `${width}px`;
    spacer.style.marginTop = `-${hgt}px`;
    modeBtn.classList.toggle("on", mode() === "time");
    const total = (msgs && msgs.seq || []).length;
    empty.style.display = rows.length ? "none" : "block";
    empty.textContent = total ? "no message matches the filter or the shown processes" : "no messages recorded: record with s.trace() (or %%trace) and refresh()";
    info.textContent = `${rows.length.toLocaleString()} of ${total.toLocaleString()} messages · ${lanes.length} processes` +
      (mode() === "time" ? ` · ${fmtUs(span)}` : "");
    el.dataset.laneX = lanes.map((_, k) => Math.round(LEFT + k * laneW + laneW / 2)).join(",");
    el.dataset.mode = mode();
    el.dataset.scale = String(mode() === "time" ? scale : rowH);   // px per µs, or px per row
    if (draw) paint();
  }

  function arrowKind(i) {
    if (msgs.status[i] === "lost") return "lost";
    return msgs.kind[i] || "info";
  }

  // Rows in view: [first, last) in compact mode; in time mode every row whose
  // arrow crosses the view (a long wait starts above it).
  function visibleRows(top, hgt) {
    const out = [];
    if (mode() === "compact") {
      const first = Math.max(0, Math.floor((top - HEADER) / rowH) - 1);
      const last = Math.min(rows.length, first + Math.ceil(hgt / rowH) + 3);
      for (let r = first; r < last; r++) out.push(r);
      return out;
    }
    const ta = (top - PAD) / scale - 1, tb = (top + hgt - HEADER - PAD) / scale + 1;
    const hi = upperBound(rowSend, tb);
    for (let r = hi - 1; r >= 0 && rowSend[r] >= ta - maxDur; r--) if (rowEnd[r] >= ta) out.push(r);
    return out.reverse();
  }

  let frameTimes = [];
  function paint() {
    const t0 = performance.now();
    colours = themeColours(root);
    const w = viewport.clientWidth || 800, hgt = viewport.clientHeight || 420;
    const dpr = window.devicePixelRatio || 1;
    if (canvas.width !== Math.round(w * dpr) || canvas.height !== Math.round(hgt * dpr)) {
      canvas.width = Math.round(w * dpr); canvas.height = Math.round(hgt * dpr);
      canvas.style.width = `${w}px`; canvas.style.height = `${hgt}px`;
    }
    const left = viewport.scrollLeft, top = viewport.scrollTop;
    ctx.setTransform(dpr, 0, 0, dpr, -left * dpr, -top * dpr);   // content coordinates from here
    ctx.fillStyle = colours.bg; ctx.fillRect(left, top, w, hgt);
    const time = mode() === "time";
    const sel = model.get("selected"), cursor = model.get("cursor");
    const vis = visibleRows(top, hgt);
    const bottom = top + hgt;
    // exits end lifelines (time mode), crash marks at them
    const exitAt = new Map();
    for (const c of model.get("crashes") || []) {
      const after = rows.findIndex((i) => i > c.row);
      const y = time ? yOfTime(c.t_us ?? 0) : yOfRow((after < 0 ? rows.length : after) - 0.5);
      exitAt.set(c.lane, { y, c });
    }
    // lifelines
    ctx.strokeStyle = colours.line; ctx.lineWidth = 1;
    for (const [orig] of laneIndex) {
      const x = laneX(orig), end = exitAt.get(orig);
      ctx.beginPath(); ctx.moveTo(x, Math.max(top + HEADER, HEADER)); ctx.lineTo(x, time && end ? Math.min(end.y, bottom) : bottom); ctx.stroke();
    }
    if (time) paintTimeLayers(top, bottom);
    // the cursor's row and the selected message
    for (const r of vis) {
      const i = rows[r];
      const atCursor = cursor >= 0 && msgs.seq[i] <= cursor && (r + 1 >= rows.length || msgs.seq[rows[r + 1]] > cursor);
      if (msgs.seq[i] !== sel && !atCursor) continue;
      const y = time ? yOfTime(rowSend[r]) : yOfRow(r);
      ctx.fillStyle = msgs.seq[i] === sel ? colours.selected : colours.cursor;
      ctx.fillRect(left, y - (time ? 4 : rowH / 2), w, time ? 8 : rowH);
    }
    drawn = []; drawnAt = new Map();
    ctx.font = "11px ui-monospace, Menlo, monospace";
    // below the header, right of the time ruler: where a label may go
    labels = labelPlacer(ctx, { x0: left + (time ? LEFT - 18 : 0), y0: top + HEADER + 1, x1: left + w, y1: bottom });
    for (const [orig, { y }] of exitAt) { const x = laneX(orig); if (x !== undefined) labels.reserve(x - 8, y - 8, x + 8, y + 7); }
    // the hovered message, and its call or reply, drawn last and highlighted
    const lit = new Set(hover >= 0 ? [hover, ...(msgs.pair && msgs.pair[hover] >= 0 ? [msgs.pair[hover]] : [])] : []);
    for (const r of vis) if (!lit.has(rows[r])) drawArrow(r, false);
    const litRows = [...lit].map((i) => rows.indexOf(i)).filter((r) => r >= 0 && vis.includes(r));
    for (const r of litRows) drawArrow(r, true);
    for (const r of litRows) labelArrow(r, true);            // the hovered pair's labels first
    for (const r of vis) if (!lit.has(rows[r])) labelArrow(r, false);
    // exits: abnormal ones are crashes (red cross), normal ones a grey ring (the legend's)
    for (const [orig, { y, c }] of exitAt) {
      const x = laneX(orig);
      // only whole: not past the edge, nor under the header or the time ruler
      if (x === undefined || y - 8 < top + HEADER || y + 7 > bottom || x - 8 < left + (time ? LEFT - 20 : 0) || x + 8 > left + w) continue;
      if (c.abnormal === false) {
        ctx.fillStyle = palette.exited; ctx.font = "bold 14px sans-serif"; ctx.textAlign = "center";
        ctx.fillText("◌", x, y + 5); ctx.textAlign = "left"; ctx.font = "11px ui-monospace, Menlo, monospace";
      } else {
        ctx.fillStyle = colours.crash; ctx.font = "bold 14px sans-serif"; ctx.textAlign = "center";
        ctx.fillText("✖", x, y + 5); ctx.textAlign = "left"; ctx.font = "11px ui-monospace, Menlo, monospace";
      }
    }
    paintMarks(top, bottom, left);
    if (time) paintRuler(top, bottom, left);
    // the sticky header: names exactly over their lifelines
    ctx.fillStyle = colours.panel; ctx.fillRect(left, top, w, HEADER);
    ctx.strokeStyle = colours.line; ctx.beginPath(); ctx.moveTo(left, top + HEADER - 0.5); ctx.lineTo(left + w, top + HEADER - 0.5); ctx.stroke();
    const names = labelPlacer(ctx, { x0: left, y0: top, x1: left + w, y1: top + HEADER });
    lanes.forEach((l, k) => {
      const x = LEFT + k * laneW + laneW / 2;
      ctx.fillStyle = colours.text; ctx.font = "600 11px sans-serif";
      names.place(String(l.label), x, top + 14, laneW - 8, "center");
      ctx.fillStyle = colours.muted; ctx.font = "10px ui-monospace, Menlo, monospace";
      names.place(String(l.id), x, top + 28, laneW - 8, "center");
    });
    frameTimes.push(performance.now() - t0);
    if (frameTimes.length > 240) frameTimes.shift();
    el.dataset.frameMs = (frameTimes.reduce((a, b) => a + b, 0) / frameTimes.length).toFixed(2);
    el.dataset.rows = String(rows.length);
  }

  function drawArrow(r, highlighted) {
    const i = rows[r];
    const time = mode() === "time";
    const x1 = laneX(msgs.from[i]);
    let x2 = laneX(msgs.to[i]);
    const kind = arrowKind(i);
    if (x1 === undefined && x2 === undefined) return;
    const y1 = time ? yOfTime(rowSend[r]) : yOfRow(r);
    const y2 = time ? yOfTime(rowEnd[r]) : y1;
    if (x2 === undefined) x2 = x1 + (kind === "lost" ? 60 : 40);
    const xs = x1 === undefined ? x2 - 40 : x1;
    const colour = kind === "info" ? colours.text : (palette[kind] || colours.text);   // info: the theme's text
    ctx.strokeStyle = highlighted ? palette.selected : colour;
    ctx.fillStyle = ctx.strokeStyle;
    ctx.setLineDash(kind === "reply" ? [3, 3] : kind === "lost" ? [6, 3] : []);
    ctx.lineWidth = (kind === "call" ? 2 : 1.3) + (highlighted ? 1.5 : 0);
    ctx.beginPath(); ctx.moveTo(xs, y1); ctx.lineTo(x2, y2); ctx.stroke(); ctx.setLineDash([]);
    drawn.push([i, xs, y1, x2, y2]); drawnAt.set(i, drawn[drawn.length - 1]);
    const dx = x2 - xs, dy = y2 - y1, len = Math.hypot(dx, dy) || 1, ux = dx / len, uy = dy / len;
    if (kind === "lost") {
      ctx.beginPath(); ctx.moveTo(x2 - 4, y2 - 4); ctx.lineTo(x2 + 4, y2 + 4);
      ctx.moveTo(x2 + 4, y2 - 4); ctx.lineTo(x2 - 4, y2 + 4); ctx.stroke();
    } else {
      ctx.beginPath(); ctx.moveTo(x2, y2);
      ctx.lineTo(x2 - 7 * ux + 4 * uy, y2 - 7 * uy - 4 * ux); ctx.lineTo(x2 - 7 * ux - 4 * uy, y2 - 7 * uy + 4 * ux);
      ctx.fill();
    }
  }

  // An arrow's label, above it (or, a level arrow's, below it when above is
  // taken), clear of every label drawn before and of the receiver's queue band.
  function labelArrow(r, highlighted) {
    const [i, xs, y1, x2, y2] = drawnAt.get(rows[r]) || [];
    if (i === undefined) return;
    const time = mode() === "time", dx = x2 - xs, dy = y2 - y1;
    if (time ? Math.abs(dy) > 2 * Math.abs(dx) : rowH < 12) return;   // steep, or too dense: no label
    const label = String((msgs.label || msgs.text)[i]);
    const rightLane = dx >= 0 ? msgs.to[i] : msgs.from[i];
    const room = Math.max(30, Math.abs(dx) - 10 - (time ? bandW.get(rightLane) || 0 : 0));
    ctx.fillStyle = highlighted ? colours.text : colours.muted;
    const x = Math.min(xs, x2) + 5;
    // on a plate of the background: the lines and queue bands it crosses stay under it
    if (labels.place(label, x, Math.min(y1, y2) - 4, room, "left", colours.bg)) return;
    if (time && Math.abs(dy) < 6) labels.place(label, x, Math.max(y1, y2) + 13, room, "left", colours.bg);
  }

  // time mode: queue bands and activation bars under the arrows
  function paintTimeLayers(top, bottom) {
    const ta = (top - HEADER - PAD) / scale, tb = (bottom - PAD) / scale;
    const queue = model.get("queue") || [];
    bandW = new Map();
    if (queue.length) {
      let peak = 1;
      for (const q of queue) peak = Math.max(peak, q[2]);
      const byLane = new Map();
      for (const q of queue) { if (!byLane.has(q[0])) byLane.set(q[0], []); byLane.get(q[0]).push(q); }
      // left of the lifeline, where no label runs (labels start right of their
      // left lane and stop short of the band of the lane they reach)
      ctx.fillStyle = "rgba(227,116,0,0.28)";
      for (const [lane, pts] of byLane) {
        const x = laneX(lane);
        if (x === undefined) continue;
        const wmax = Math.min(40, laneW / 2 - 8);
        bandW.set(lane, wmax + 5);
        ctx.beginPath(); ctx.moveTo(x - 5, yOfTime(pts[0][1]));
        let last = 0;
        for (const [, t, n] of pts) {   // a step function: the length holds until the next sample
          if (t > tb) break;
          const y = yOfTime(t);
          ctx.lineTo(x - 5 - (last / peak) * wmax, y); ctx.lineTo(x - 5 - (n / peak) * wmax, y);
          last = n;
        }
        ctx.lineTo(x - 5 - (last / peak) * wmax, yOfTime(Math.min(span, tb))); ctx.lineTo(x - 5, yOfTime(Math.min(span, tb)));
        ctx.closePath(); ctx.fill();
      }
    }
    ctx.fillStyle = "rgba(47,111,214,0.35)"; ctx.strokeStyle = palette.call; ctx.lineWidth = 1;
    for (const [lane, start, dur] of model.get("activations") || []) {
      if (start > tb || start + dur < ta) continue;
      const x = laneX(lane);
      if (x === undefined) continue;
      const y = yOfTime(start), hh = Math.max(2, dur * scale);
      ctx.fillRect(x - 4, y, 8, hh); ctx.strokeRect(x - 4, y, 8, hh);
    }
  }

  function paintRuler(top, bottom, left) {
    const step = niceStep(80 / scale);
    const ta = Math.max(0, (top - PAD) / scale), tb = (bottom - HEADER - PAD) / scale + step;
    ctx.fillStyle = colours.panel; ctx.fillRect(left, top + HEADER, LEFT - 20, bottom - top);
    ctx.fillStyle = colours.muted; ctx.strokeStyle = colours.line; ctx.font = "10px sans-serif"; ctx.textAlign = "right";
    for (let t = Math.floor(ta / step) * step; t <= tb; t += step) {
      const y = yOfTime(t);
      if (y < top + HEADER + 8) continue;
      if (y + 4 > bottom) break;               // a tick whose label the edge would cut
      ctx.beginPath(); ctx.moveTo(left + LEFT - 26, y); ctx.lineTo(left + LEFT - 20, y); ctx.stroke();
      ctx.fillText(fmtUs(t), left + LEFT - 28, y + 3);
    }
    ctx.textAlign = "left";
  }

  // findings in the left margin: a triangle at the seq (compact) or time they name
  let markSpots = [];
  function paintMarks(top, bottom, left) {
    markSpots = [];
    const time = mode() === "time";
    for (const m of model.get("marks") || []) {
      let y;
      if (time) y = yOfTime(m.t_us ?? 0);
      else { const r = rows.findIndex((i) => msgs.seq[i] >= m.seq); y = yOfRow(r < 0 ? rows.length - 0.5 : r); }
      if (y < top + HEADER || y > bottom) continue;
      const x = left + 8;
      ctx.fillStyle = m.severity === "error" ? colours.crash : m.severity === "warning" ? "#f9ab00" : m.severity === "note" ? ui.note : colours.accent;
      ctx.beginPath(); ctx.moveTo(x, y - 6); ctx.lineTo(x + 10, y); ctx.lineTo(x, y + 6); ctx.fill();
      markSpots.push([x + 5 - left, y - top, m]);
    }
  }

  // -- hit testing against what was drawn
  function pointer(ev) {
    const rect = viewport.getBoundingClientRect();
    return { vx: ev.clientX - rect.left, vy: ev.clientY - rect.top,
             x: ev.clientX - rect.left + viewport.scrollLeft, y: ev.clientY - rect.top + viewport.scrollTop };
  }
  function markAt(p) {
    for (const [x, y, m] of markSpots) if (Math.abs(p.vx - x) <= 8 && Math.abs(p.vy - y) <= 8) return m;
    return null;
  }
  function messageAt(p) {
    if (p.vy < HEADER) return -1;
    if (mode() === "compact") {
      const r = Math.floor((p.y - HEADER) / rowH);
      return r >= 0 && r < rows.length ? rows[r] : -1;
    }
    let best = -1, bestD = 7;
    for (const [i, x1, y1, x2, y2] of drawn) {
      const dx = x2 - x1, dy = y2 - y1, l2 = dx * dx + dy * dy || 1;
      const t = Math.max(0, Math.min(1, ((p.x - x1) * dx + (p.y - y1) * dy) / l2));
      const d = Math.hypot(p.x - (x1 + t * dx), p.y - (y1 + t * dy));
      if (d < bestD) { bestD = d; best = i; }
    }
    return best;
  }
  function describe(i) {
    const name = (lane) => { const l = (model.get("lanes") || [])[lane]; return l ? l.label : "?"; };
    const wait = msgs.wait_us ? msgs.wait_us[i] : null, lat = msgs.latency_us[i];
    const took = wait !== null && wait !== undefined && !Number.isNaN(wait) ? `waited ${fmtUs(wait)}` : fmtUs(lat);
    const p = msgs.pair ? msgs.pair[i] : -1, send = msgs.send_us || [];
    const paired = p >= 0 ? (msgs.kind[i] === "call"
      ? `\nreplied by #${msgs.seq[p]}${send[p] !== undefined && send[i] !== undefined ? ` after ${fmtUs(send[p] - send[i])}` : ""}`
      : `\nanswers the call #${msgs.seq[p]}`) : "";
    return `${name(msgs.from[i])} → ${msgs.to[i] >= 0 ? name(msgs.to[i]) : "?"} · ${msgs.kind[i] || "info"}` +
      (took ? ` · ${took}` : "") + `\n#${msgs.seq[i]} ${msgs.status[i]}${paired}\n${msgs.text[i]}`;
  }
  function select(i) {
    model.set("selected", msgs.seq[i]); model.set("cursor", msgs.seq[i]); model.save_changes();
  }

  viewport.addEventListener("scroll", () => requestAnimationFrame(paint));
  let drag = null;
  viewport.addEventListener("mousedown", (ev) => {
    if (ev.button !== 0) return;
    drag = { x: ev.clientX, y: ev.clientY, l: viewport.scrollLeft, t: viewport.scrollTop, moved: false };
  });
  window.addEventListener("mouseup", () => { setTimeout(() => { drag = null; }, 0); });
  viewport.addEventListener("mousemove", (ev) => {
    if (drag && ev.buttons === 1) {
      const dx = ev.clientX - drag.x, dy = ev.clientY - drag.y;
      if (Math.abs(dx) + Math.abs(dy) > 3) drag.moved = true;
      if (drag.moved) {
        viewport.scrollLeft = drag.l - dx; viewport.scrollTop = drag.t - dy;
        tip.hide(); return;
      }
    }
    const p = pointer(ev);
    const m = markAt(p);
    if (m) { tip.show(ev, `${m.severity}: ${m.text}\n(click: go to #${m.seq})`); return; }
    const i = messageAt(p);
    if (i !== hover) { hover = i; requestAnimationFrame(paint); }
    if (i < 0) { tip.hide(); return; }
    tip.show(ev, describe(i));
  });
  viewport.addEventListener("mouseleave", () => { tip.hide(); if (hover >= 0) { hover = -1; paint(); } });
  viewport.addEventListener("click", (ev) => {
    if (drag && drag.moved) return;          // the end of a pan, not a click
    const p = pointer(ev);
    if (p.vy < HEADER) {
      // a click on a lifeline's name hides that process
      const k = Math.floor((p.x - LEFT) / laneW);
      if (k >= 0 && k < lanes.length) { model.set("hidden", [...(model.get("hidden") || []), lanes[k].id]); model.save_changes(); }
      return;
    }
    const m = markAt(p);
    if (m) { model.set("cursor", m.seq); model.save_changes(); return; }
    const i = messageAt(p);
    if (i >= 0) select(i);
  });
  viewport.addEventListener("wheel", (ev) => {
    if (!ev.ctrlKey) return;
    ev.preventDefault();
    zoom(ev.deltaY < 0 ? 1.2 : 1 / 1.2, pointer(ev).vy);
  }, { passive: false });
  viewport.addEventListener("keydown", (ev) => {
    const k = ev.key;
    if (k === "ArrowDown" || k === "ArrowUp" || k === "Home" || k === "End") {
      ev.preventDefault();
      if (!rows.length) return;
      const sel = model.get("selected");
      let r = rows.findIndex((i) => msgs.seq[i] === sel);
      r = k === "Home" ? 0 : k === "End" ? rows.length - 1
        : r < 0 ? 0 : Math.max(0, Math.min(rows.length - 1, r + (k === "ArrowDown" ? 1 : -1)));
      select(rows[r]);
      scrollToRow(r);
    } else if (k === "+" || k === "=") { ev.preventDefault(); zoom(1.25); }
    else if (k === "-") { ev.preventDefault(); zoom(0.8); }
    else if (k === "f") { ev.preventDefault(); fitAll(); }
    else if (k === "0") { ev.preventDefault(); resetZoom(); }
    else if (k === "t") { ev.preventDefault(); toggleMode(); }
    else return;
    ev.stopPropagation();   // JupyterLab's notebook shortcuts must not act on these
  });
  function scrollToRow(r) {
    const y = mode() === "time" ? yOfTime(rowSend[r]) : yOfRow(r);
    const hgt = viewport.clientHeight;
    if (y < viewport.scrollTop + HEADER + rowH || y > viewport.scrollTop + hgt - rowH) viewport.scrollTop = Math.max(0, y - hgt / 2);
    paint();
  }
  function toggleMode() {
    model.set("mode", mode() === "time" ? "compact" : "time"); model.save_changes();
  }
  modeBtn.addEventListener("click", toggleMode);
  zoomIn.addEventListener("click", () => zoom(1.25));
  zoomOut.addEventListener("click", () => zoom(0.8));
  fit.addEventListener("click", fitAll);
  reset.addEventListener("click", () => resetZoom());
  showAll.addEventListener("click", () => { model.set("hidden", []); model.save_changes(); });
  filter.value = model.get("filter") || "";
  filter.addEventListener("input", () => { model.set("filter", filter.value); model.save_changes(); });
  for (const name of ["lanes", "msgs", "hidden", "filter", "row_filter", "activations", "queue"]) model.on(`change:${name}`, rebuild);
  model.on("change:mode", () => {
    // keep the selected (or first visible) message in view across the switch
    const sel = model.get("selected");
    const r = rows.findIndex((i) => msgs.seq[i] === sel);
    layout();
    if (r >= 0) scrollToRow(r);
  });
  for (const name of ["selected", "marks", "crashes"]) model.on(`change:${name}`, () => paint());
  model.on("change:cursor", () => {
    const c = model.get("cursor");
    const r = rows.findIndex((i) => msgs.seq[i] >= c);
    if (r >= 0) scrollToRow(r); else paint();
  });
  const stopResize = onResize(viewport, () => layout());
  const stopTheme = onThemeChange(() => paint());   // canvas colours are read at each paint
  const t0 = performance.now();
  rebuild();
  el.dataset.firstRenderMs = (performance.now() - t0).toFixed(1);
  requestAnimationFrame(() => { layout(); el.dataset.ready = "1"; });
  return () => { stopResize(); stopTheme(); root.remove(); };
}

export default { render };
