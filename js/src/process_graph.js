// ProcessGraph: processes as nodes, message flows as edges (width by count,
// grey to orange by how long messages waited), laid out by a small force
// simulation from a fixed start, so the same recording draws the same picture.
// Lost messages are their own edge, red and dashed, ending in ✖ and counted;
// a crashed process is ringed red with a ✖, one that exited is dashed grey.
// Red means lost or crashed, nothing else (the legend, shared by every widget).
// Play animates the recording: messages fly along their edges while the
// shared cursor (and every linked widget) follows; each stays on screen long
// enough to see, as most are in flight for microseconds. A focused message or
// finding shows its causal chain, hop by hop, the longest wait in orange.
// Model:
//   nodes: [{id, label, sent, received, state: alive|crashed|exited, exit}]
//   edges: [{from, to, count, lost, median_us, max_us}]      (node indexes)
//   flights: {from: [], to: [], send_ms: [], end_ms: [], lost: []}  one per message, by send time
//   seq_times: [[ms, seq]]   span: ms    cursor: seq    playing: bool   speed: x
//   path: [{from, to, send_seq, text, wait_us, worked_us, slowest}]   focus: seq (-1 none)
//   marks: [{seq, severity, text}]   findings: clicking one focuses it
import { h, palette, waitColour, legend, injectStyle, baseCss, themeColours, tooltip, onResize, fmtUs, upperBound, notesStrip, onThemeChange, labelPlacer } from "./common.js";

function render({ model, el }) {
  const root = h("div", { class: "mic mic-graph" });
  injectStyle(root, baseCss + `
    .mic-graph canvas { display: block; width: 100%; height: 440px; cursor: default; }
    .mic-graph .path { padding: 4px 8px; border-top: 1px solid var(--mic-line); white-space: pre-wrap; }
    .mic-graph .path:empty { display: none; }
    .mic-graph .path .slow { color: ${waitColour(1e6)}; font-weight: 600; }
    .mic-graph .key { padding: 2px 8px; border-bottom: 1px solid var(--mic-line); }
    .mic-graph select.findings { max-width: 320px; }`);
  const play = h("button", { class: "play", title: "play the recording (space)" }, "▶ play");
  const speed = h("select", { class: "speed", title: "playback speed" },
    ...[0.01, 0.1, 1, 10, 100].map((v) => h("option", { value: String(v) }, `${v}×`)));
  const clock = h("span", { class: "muted mono clock" });
  const findings = h("select", { class: "findings", title: "show the causal chain of a finding" });
  const info = h("span", { class: "muted info" });
  const canvas = h("canvas", { tabindex: "0" });
  const pathBox = h("div", { class: "path mono" });
  const key = h("div", { class: "key" }, legend(["wait", "lost", "crashed", "exited", "chain"]));
  root.append(h("div", { class: "bar" }, play, speed, clock, findings, info), key, canvas, pathBox);
  const tip = tooltip(root);
  root.append(notesStrip(model));   // annotations (s.annotate)
  el.append(root);
  const ctx = canvas.getContext("2d");

  let nodes = [], edges = [], pos = [], t = 0, last = null, raf = null, lastCursorPush = 0, hoverEdge = -1;
  let colours = themeColours(root), sendIdx = null;

  // -- layout: a force simulation run to rest once (a few hundred nodes at most)
  function layout() {
    nodes = model.get("nodes") || [];
    edges = model.get("edges") || [];
    const n = nodes.length, w = canvas.clientWidth || 800, hgt = canvas.clientHeight || 440;
    pos = nodes.map((_, i) => ({ x: w / 2 + Math.cos((2 * Math.PI * i) / Math.max(1, n)) * Math.min(w, hgt) * 0.35,
                                 y: hgt / 2 + Math.sin((2 * Math.PI * i) / Math.max(1, n)) * Math.min(w, hgt) * 0.35 }));
    const k = Math.sqrt((w * hgt) / Math.max(1, n)) * 0.6;
    const rounds = n > 100 ? 120 : 300;       // O(n²) a round: fewer, larger steps for big graphs
    const cool = Math.pow(0.01, 1 / rounds);
    for (let it = 0, temp = Math.min(w, hgt) / 8; it < rounds; it++, temp *= cool) {
      const d = pos.map(() => ({ x: 0, y: 0 }));
      for (let i = 0; i < n; i++) for (let j = i + 1; j < n; j++) {
        let dx = pos[i].x - pos[j].x, dy = pos[i].y - pos[j].y;
        const dist = Math.max(1, Math.hypot(dx, dy)), f = (k * k) / dist;
        dx /= dist; dy /= dist;
        d[i].x += dx * f; d[i].y += dy * f; d[j].x -= dx * f; d[j].y -= dy * f;
      }
      for (const e of edges) {
        const a = pos[e.from], b = pos[e.to];
        if (!a || !b || e.from === e.to) continue;
        let dx = a.x - b.x, dy = a.y - b.y;
        const dist = Math.max(1, Math.hypot(dx, dy)), f = (dist * dist) / k;
        dx /= dist; dy /= dist;
        d[e.from].x -= dx * f; d[e.from].y -= dy * f; d[e.to].x += dx * f; d[e.to].y += dy * f;
      }
      for (let i = 0; i < n; i++) {
        // gravity: without it repulsion pins loosely connected processes to the walls
        d[i].x += (w / 2 - pos[i].x) * 0.9; d[i].y += (hgt / 2 - pos[i].y) * 1.6;
        const len = Math.max(1e-9, Math.hypot(d[i].x, d[i].y)), step = Math.min(len, temp);
        pos[i].x = Math.max(60, Math.min(w - 60, pos[i].x + (d[i].x / len) * step));
        pos[i].y = Math.max(30, Math.min(hgt - 30, pos[i].y + (d[i].y / len) * step));
      }
    }
    const f = model.get("flights") || {};
    sendIdx = Float64Array.from(f.send_ms || []);
    info.textContent = n ? `${n} processes · ${edges.length} flows · ${(f.send_ms || []).length.toLocaleString()} messages`
      : "no messages between traced processes yet: record with s.trace() and refresh()";
    el.dataset.nodes = JSON.stringify(pos.map((p) => [Math.round(p.x), Math.round(p.y)]));
    paint();
  }

  // What each edge draws: its delivered messages (wait colour) and, apart,
  // its lost ones (red, dashed, bent further out so the two never overlap).
  function strokes() {
    const out = [];
    edges.forEach((e, i) => {
      const lost = e.lost || 0;
      if (e.count - lost > 0) out.push({ edge: i, kind: "wait", count: e.count - lost, bend: 18 });
      if (lost > 0) out.push({ edge: i, kind: "lost", count: lost, bend: e.count - lost > 0 ? 42 : 18 });
    });
    return out;
  }
  const maxCount = () => Math.max(1, ...edges.map((e) => e.count));

  // an edge between a and b, bent to one side so a->b and b->a stay apart
  function curve(a, b, bend = 18) {
    const mx = (a.x + b.x) / 2, my = (a.y + b.y) / 2, dx = b.x - a.x, dy = b.y - a.y, len = Math.max(1, Math.hypot(dx, dy));
    return { cx: mx - (dy / len) * bend, cy: my + (dx / len) * bend };
  }
  const at = (a, c, b, u) => ({ x: (1 - u) * (1 - u) * a.x + 2 * (1 - u) * u * c.cx + u * u * b.x,
                                y: (1 - u) * (1 - u) * a.y + 2 * (1 - u) * u * c.cy + u * u * b.y });

  function paint() {
    colours = themeColours(root);
    const w = canvas.clientWidth || 800, hgt = canvas.clientHeight || 440, dpr = window.devicePixelRatio || 1;
    if (canvas.width !== Math.round(w * dpr) || canvas.height !== Math.round(hgt * dpr)) {
      canvas.width = Math.round(w * dpr); canvas.height = Math.round(hgt * dpr);
    }
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.fillStyle = colours.bg; ctx.fillRect(0, 0, w, hgt);
    const onPath = new Map((model.get("path") || []).map((p, i) => [`${p.from}>${p.to}`, { ...p, order: i + 1 }]));
    const mc = maxCount(), drawn = [];
    // no label over another or past the edge: the lost counts first, then the
    // chain's hops, then the names (the crashed and the busiest first)
    const labels = labelPlacer(ctx, { x0: 0, y0: 0, x1: w, y1: hgt });
    const maxTraffic = Math.max(1, ...nodes.map((nd) => nd.sent + nd.received));
    const radius = (nd) => 6 + 10 * Math.sqrt((nd.sent + nd.received) / maxTraffic);
    nodes.forEach((nd, i) => { if (nd.state === "crashed" || (!nd.state && nd.crashed)) labels.reserve(pos[i].x - 8, pos[i].y - 8, pos[i].x + 8, pos[i].y + 8); });
    for (const st of strokes()) {
      const e = edges[st.edge], a = pos[e.from], b = pos[e.to];
      if (!a || !b) continue;
      const c = curve(a, b, st.bend), lost = st.kind === "lost";
      const hop = lost ? undefined : onPath.get(`${e.from}>${e.to}`), hover = st.edge === hoverEdge;
      ctx.strokeStyle = lost ? palette.lost : hop ? (hop.slowest ? waitColour(1e6) : colours.accent)
        : waitColour(e.median_us);
      ctx.globalAlpha = hop || hover || lost ? 1 : 0.75;
      ctx.lineWidth = (hop ? 3 : 1) + 5 * Math.log1p(st.count) / Math.log1p(mc) + (hover ? 2 : 0);
      ctx.setLineDash(lost ? [7, 4] : []);
      ctx.beginPath(); ctx.moveTo(a.x, a.y); ctx.quadraticCurveTo(c.cx, c.cy, b.x, b.y); ctx.stroke();
      ctx.setLineDash([]);
      const tipAt = at(a, c, b, 0.8), before = at(a, c, b, 0.72), mid = at(a, c, b, 0.5);
      ctx.fillStyle = ctx.strokeStyle;
      if (lost) {      // it never arrived: a cross where the arrow head would be, and how many
        ctx.font = "bold 14px sans-serif"; ctx.textAlign = "center"; ctx.textBaseline = "middle";
        ctx.fillText("✖", tipAt.x, tipAt.y);
        ctx.textAlign = "left"; ctx.textBaseline = "alphabetic";
        labels.reserve(tipAt.x - 8, tipAt.y - 8, tipAt.x + 8, tipAt.y + 8);
        ctx.font = "bold 11px sans-serif"; ctx.fillStyle = palette.lost;     // on a plate: legible over the line
        labels.place(`${st.count} lost`, mid.x, mid.y + 4, 160, "center", colours.bg);
      } else {
        const ang = Math.atan2(tipAt.y - before.y, tipAt.x - before.x);
        ctx.beginPath(); ctx.moveTo(tipAt.x, tipAt.y);
        ctx.lineTo(tipAt.x - 9 * Math.cos(ang - 0.4), tipAt.y - 9 * Math.sin(ang - 0.4));
        ctx.lineTo(tipAt.x - 9 * Math.cos(ang + 0.4), tipAt.y - 9 * Math.sin(ang + 0.4)); ctx.fill();
      }
      ctx.globalAlpha = 1;
      if (hop) {
        ctx.fillStyle = colours.text; ctx.font = "bold 11px sans-serif";
        labels.place(`${hop.order}${hop.slowest ? ` · waited ${fmtUs(hop.wait_us)}` : ""}`, mid.x + 6, mid.y - 6, 200);
      }
      drawn.push({ from: e.from, to: e.to, kind: st.kind, count: st.count, x: Math.round(mid.x), y: Math.round(mid.y) });
    }
    el.dataset.edges = JSON.stringify(drawn);   // what the picture says, for tests and tools
    // messages in flight at the playback time
    const f = model.get("flights") || {};
    const edgeLost = (a, b) => edges.some((e) => e.from === a && e.to === b && e.lost && e.count > e.lost);
    if (model.get("playing") || t > 0) {
      const hi = upperBound(sendIdx, t);
      ctx.fillStyle = palette.selected;
      let shown = 0;
      // on screen for at least ~0.4 s of playback, however brief its flight
      const visible = 400 * Number(speed.value);
      for (let i = hi - 1; i >= 0 && shown < 400; i--) {
        const s = f.send_ms[i], lost = f.lost && f.lost[i];
        const e = Math.max(f.end_ms[i] ?? s, s + visible);
        if (e < t) { if (t - s > 60000 + visible) break; continue; }
        const a = pos[f.from[i]], b = pos[f.to[i]];
        if (!a || !b) continue;
        const u = Math.max(0, Math.min(1, (t - s) / (e - s)));
        const p = at(a, curve(a, b, lost && edgeLost(f.from[i], f.to[i]) ? 42 : 18), b, lost ? 0.8 * u : u);
        ctx.fillStyle = lost ? palette.lost : palette.selected;
        ctx.beginPath(); ctx.arc(p.x, p.y, 3.5, 0, 7); ctx.fill(); shown++;
      }
      el.dataset.inFlight = String(shown);
    }
    // nodes
    nodes.forEach((nd, i) => {
      const p = pos[i], r = radius(nd);
      const state = nd.state || (nd.crashed ? "crashed" : "alive");
      ctx.fillStyle = colours.panel;
      ctx.strokeStyle = state === "crashed" ? palette.crash : state === "exited" ? palette.exited : colours.muted;
      ctx.lineWidth = state === "crashed" ? 3 : 1.5;
      ctx.setLineDash(state === "exited" ? [3, 3] : []);
      ctx.beginPath(); ctx.arc(p.x, p.y, r, 0, 7); ctx.fill(); ctx.stroke(); ctx.setLineDash([]);
      ctx.textAlign = "center";
      if (state === "crashed") {
        ctx.fillStyle = palette.crash; ctx.font = "bold 13px sans-serif"; ctx.textBaseline = "middle";
        ctx.fillText("✖", p.x, p.y); ctx.textBaseline = "alphabetic";
      }
      ctx.textAlign = "left";
    });
    ctx.font = "600 11px sans-serif";
    const order = nodes.map((_, i) => i).sort((a, b) => (nodes[b].crashed - nodes[a].crashed)
      || (nodes[b].sent + nodes[b].received) - (nodes[a].sent + nodes[a].received));
    for (const i of order) {       // above its circle, else below it, cut to the room it has
      const nd = nodes[i], p = pos[i], r = radius(nd), state = nd.state || (nd.crashed ? "crashed" : "alive");
      ctx.fillStyle = state === "alive" ? colours.text : colours.muted;
      const room = Math.min(180, 2 * Math.min(p.x, w - p.x) - 4);
      if (!labels.place(String(nd.label), p.x, p.y - r - 4, room, "center")) labels.place(String(nd.label), p.x, p.y + r + 12, room, "center");
    }
    clock.textContent = `${fmtUs(t * 1000)} / ${fmtUs((model.get("span") || 0) * 1000)}`;
  }

  function drawPath() {
    const path = model.get("path") || [];
    if (!path.length) { pathBox.replaceChildren(); return; }
    const label = (k) => (nodes[k] ? nodes[k].label : "outside the trace");
    pathBox.replaceChildren(h("b", {}, `causal chain of #${model.get("focus")} (${path.length} hops)`),
      ...path.map((p, i) => h("div", { class: p.slowest ? "slow" : "" },
        `${i + 1}. ${label(p.from)} → ${label(p.to)}  ${p.text}` +
        (p.worked_us !== null && p.worked_us !== undefined ? `  (sent ${fmtUs(p.worked_us)} into its cause's callback)` : "") +
        (p.wait_us !== null && p.wait_us !== undefined ? `  waited ${fmtUs(p.wait_us)}` : "") +
        (p.slowest ? "  ← the longest wait" : ""))));
  }

  function drawFindings() {
    const marks = model.get("marks") || [];
    findings.replaceChildren(h("option", { value: "" }, marks.length ? "causal chain of a finding…" : "no findings"),
      ...marks.map((m) => h("option", { value: String(m.seq) }, `${m.severity}: ${m.text}`.slice(0, 90))));
    findings.value = "";
  }

  // -- playback
  const seqAt = (ms) => {
    const st = model.get("seq_times") || [];
    let lo = 0, hi = st.length - 1;
    if (hi < 0) return -1;
    while (lo < hi) { const mid = (lo + hi + 1) >> 1; if (st[mid][0] <= ms) lo = mid; else hi = mid - 1; }
    return st[lo][1];
  };
  function frame(now) {
    if (!model.get("playing")) { raf = null; return; }
    const dt = last === null ? 0 : now - last;
    last = now;
    t = Math.min(model.get("span") || 0, t + dt * Number(speed.value));
    const done = t >= (model.get("span") || 0);
    if (done || now - lastCursorPush > 120) {      // linked widgets follow, a few times a second
      lastCursorPush = now;
      const seq = seqAt(t);
      if (seq >= 0 && seq !== model.get("cursor")) { model.set("cursor", seq); model.save_changes(); }
    }
    paint();
    if (done) { model.set("playing", false); model.save_changes(); raf = null; return; }
    raf = requestAnimationFrame(frame);
  }
  function setPlaying(on) {
    if (on && t >= (model.get("span") || 0)) t = 0;
    model.set("playing", on); model.save_changes();
  }
  model.on("change:playing", () => {
    play.textContent = model.get("playing") ? "■ pause" : "▶ play";
    if (model.get("playing") && raf === null) { last = null; raf = requestAnimationFrame(frame); }
  });

  // -- hover and clicks
  function edgeAt(x, y) {
    let best = -1, bestD = 8;
    for (const st of strokes()) {
      const e = edges[st.edge], a = pos[e.from], b = pos[e.to];
      if (!a || !b) continue;
      const c = curve(a, b, st.bend);
      for (let u = 0; u <= 1; u += 0.05) {
        const p = at(a, c, b, u), d = Math.hypot(p.x - x, p.y - y);
        if (d < bestD) { bestD = d; best = st.edge; }
      }
    }
    return best;
  }
  // every figure it names is there, or it says why not
  function edgeText(e) {
    const delivered = e.count - (e.lost || 0);
    const waits = e.median_us === null || e.median_us === undefined
      ? "no wait known (its receiver is not traced)" : `median wait ${fmtUs(e.median_us)} · longest ${fmtUs(e.max_us)}`;
    if (!e.lost) return `${nodes[e.from].label} → ${nodes[e.to].label}\n${e.count} messages · ${waits}` +
      "\n(click: the causal chain of its last message)";
    return `${nodes[e.from].label} → ${nodes[e.to].label}\n${e.count} messages` +
      (delivered > 0 ? `\n${delivered} delivered · ${waits}` : "") +
      (e.lost ? `\n✖ ${e.lost} lost: ${nodes[e.to].label} was dead, or died with them unread` : "") +
      "\n(click: the causal chain of its last message)";
  }
  function nodeAt(x, y) {
    return pos.findIndex((p) => Math.hypot(p.x - x, p.y - y) < 14);
  }
  canvas.addEventListener("mousemove", (ev) => {
    const r = canvas.getBoundingClientRect(), x = ev.clientX - r.left, y = ev.clientY - r.top;
    const ni = nodeAt(x, y);
    const ei = ni >= 0 ? -1 : edgeAt(x, y);
    if (ei !== hoverEdge) { hoverEdge = ei; paint(); }
    if (ni >= 0) {
      const nd = nodes[ni], state = nd.state || (nd.crashed ? "crashed" : "alive");
      tip.show(ev, `${nd.label} ${nd.id}\nsent ${nd.sent} · received ${nd.received}` +
        (state === "alive" ? "" : `\n${state === "crashed" ? "✖ crashed" : "exited"}${nd.exit ? `: ${nd.exit}` : ""}`));
    } else if (ei >= 0) tip.show(ev, edgeText(edges[ei]));
    else tip.hide();
  });
  canvas.addEventListener("mouseleave", () => { tip.hide(); if (hoverEdge >= 0) { hoverEdge = -1; paint(); } });
  canvas.addEventListener("click", (ev) => {
    const r = canvas.getBoundingClientRect();
    const ei = edgeAt(ev.clientX - r.left, ev.clientY - r.top);
    if (ei >= 0 && edges[ei].last_seq !== undefined) { model.set("focus", edges[ei].last_seq); model.save_changes(); }
  });
  canvas.addEventListener("keydown", (ev) => {
    if (ev.key === " ") { ev.preventDefault(); ev.stopPropagation(); setPlaying(!model.get("playing")); }
  });
  play.addEventListener("click", () => setPlaying(!model.get("playing")));
  speed.value = String(model.get("speed") || 1);
  speed.addEventListener("change", () => { model.set("speed", Number(speed.value)); model.save_changes(); });
  // a saved report holds the chain of the finding chosen when it was saved; any
  // other is the kernel's to compute
  const savedFocus = model.get("focus");
  findings.addEventListener("change", () => {
    if (!findings.value) return;
    if (!model.offline || Number(findings.value) === savedFocus) {
      model.set("focus", Number(findings.value)); model.save_changes();
      if (model.offline) { drawPath(); paint(); }
      return;
    }
    pathBox.replaceChildren(h("span", { class: "muted" }, "the causal chain of this finding needs the notebook's kernel: this saved report kept only " + (savedFocus !== null && savedFocus !== undefined && savedFocus >= 0 ? `the one of #${savedFocus}` : "none")));
  });
  for (const name of ["nodes", "edges", "flights"]) model.on(`change:${name}`, layout);
  model.on("change:path", () => { drawPath(); paint(); });
  model.on("change:marks", drawFindings);
  const stopResize = onResize(canvas, layout);
  const stopTheme = onThemeChange(() => paint());   // canvas colours are read at each paint
  layout();
  drawPath();
  drawFindings();
  el.dataset.ready = "1";
  return () => { stopResize(); stopTheme(); if (raf !== null) cancelAnimationFrame(raf); root.remove(); };
}

export default { render };
