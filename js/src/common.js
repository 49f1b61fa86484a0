// Shared helpers for the widgets: DOM, theme colours, tooltips, resizing,
// findings marks. No dependencies.

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "style" && typeof v === "object") Object.assign(el.style, v);
    else if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
    else if (v !== undefined && v !== null && v !== false) el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

// An <input> JupyterLab must not steal arrow keys from.
export function input(attrs = {}) {
  const el = h("input", { ...attrs, "data-lm-suppress-shortcuts": "true" });
  el.addEventListener("keydown", (e) => e.stopPropagation());
  return el;
}

// One palette for the live views and the static HTML Python writes.
import colours from "../../microscope_jupyter/widgets/palette.json";

export const palette = colours.kinds;
export const ui = colours.ui;

// The key every widget shows, from one vocabulary (palette.json "legend"):
// the same mark means the same thing in every view. Red is lost or crashed,
// nothing else; a wait runs grey to orange.
export function legendColour(key) {
  const entry = colours.legend[key];
  if (key === "info") return "var(--mic-text)";
  return palette[entry.colour] || ui[entry.colour];
}
export function legend(keys) {
  return h("span", { class: "legend muted" }, ...keys.map((k) => {
    const entry = colours.legend[k];
    return h("span", { "data-legend": k, style: { whiteSpace: "nowrap" } },
      h("span", { style: { color: legendColour(k), fontWeight: "600" } }, entry.mark), " ", entry.text);
  }));
}

// A wait in µs -> grey (10 µs or less) .. orange (100 ms or more), on a log
// scale fixed for every recording, so a 30 µs wait never looks long because
// nothing waited longer. Never red: red is lost.
export function waitColour(us) {
  const t = Math.max(0, Math.min(1, Math.log10(Math.max(us || 0, 10) / 10) / 4)), mix = (a, b) => Math.round(a + (b - a) * t);
  const rgb = (hex) => [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16));
  const from = rgb(ui.wait_short), to = rgb(ui.wait_long);
  return `rgb(${mix(from[0], to[0])},${mix(from[1], to[1])},${mix(from[2], to[2])})`;
}

// 0..1 -> green..yellow..red
export function heat(x) {
  const t = Math.max(0, Math.min(1, x));
  const r = Math.round(t < 0.5 ? 2 * t * 230 + 46 : 230);
  const g = Math.round(t < 0.5 ? 158 + t * 40 : 178 - (t - 0.5) * 2 * 130);
  return `rgb(${r},${g},60)`;
}

export function injectStyle(root, css) {
  root.append(h("style", {}, css));
}

// Every colour of the chrome is a JupyterLab theme variable (light or dark),
// with the light value as the fallback outside JupyterLab. Canvas painters
// read the resolved values through themeColours().
export const baseCss = `
.mic { --mic-text: var(--jp-ui-font-color1, ${ui.text}); --mic-muted: var(--jp-ui-font-color2, ${ui.muted});
       --mic-line: var(--jp-border-color2, ${ui.line}); --mic-panel: var(--jp-layout-color2, ${ui.panel});
       --mic-bg: var(--jp-layout-color1, #ffffff); --mic-faint: var(--jp-border-color3, #f1f3f4);
       --mic-accent: var(--jp-brand-color1, ${palette.call});
       --mic-changed: color-mix(in srgb, var(--jp-warn-color1, #f9ab00) 22%, transparent);
       --mic-selected: color-mix(in srgb, var(--jp-warn-color1, #f9ab00) 30%, transparent);
       --mic-cursor: color-mix(in srgb, var(--jp-brand-color1, #2f6fd6) 18%, transparent);
       --mic-diff: var(--jp-warn-color0, ${ui.diff}); --mic-dead: var(--jp-ui-font-color3, ${ui.dead});
       --mic-crash: var(--jp-error-color1, ${palette.crash});
       --mic-tip-bg: var(--jp-inverse-layout-color1, #202124); --mic-tip-text: var(--jp-ui-inverse-font-color1, #ffffff);
       font: 12px/1.4 var(--jp-ui-font-family, -apple-system, BlinkMacSystemFont, "Segoe UI", Roboto, sans-serif);
       color: var(--mic-text); background: var(--mic-bg); border: 1px solid var(--mic-line);
       border-radius: 6px; overflow: hidden; position: relative; }
.mic .bar { display: flex; gap: 6px; align-items: center; padding: 6px 8px;
            background: var(--mic-panel); border-bottom: 1px solid var(--mic-line); flex-wrap: wrap; }
.mic input, .mic select, .mic button { font: inherit; padding: 2px 6px; color: var(--mic-text);
            background: var(--mic-bg); border: 1px solid var(--mic-line); border-radius: 3px; }
.mic button:hover { border-color: var(--mic-accent); }
.mic .muted { color: var(--mic-muted); }
.mic .legend { display: inline-flex; flex-wrap: wrap; column-gap: 10px; }
.mic .mono { font-family: var(--jp-code-font-family, ui-monospace, SFMono-Regular, Menlo, monospace); }
.mic .empty { padding: 16px; color: var(--mic-muted); }
.mic .tip { position: absolute; z-index: 10; max-width: 520px; background: var(--mic-tip-bg);
            color: var(--mic-tip-text); padding: 6px 8px; border-radius: 4px; white-space: pre-wrap;
            pointer-events: none; font-family: var(--jp-code-font-family, ui-monospace, Menlo, monospace);
            font-size: 11px; box-shadow: 0 1px 4px rgba(0,0,0,.3); }
.mic .marks { position: relative; height: 10px; }
.mic .mark { position: absolute; top: 0; width: 10px; height: 10px; margin-left: -5px; padding: 0;
             border: none; border-radius: 2px; cursor: pointer; }
.mic .mark.error { background: var(--mic-crash); }
.mic .mark.warning { background: var(--jp-warn-color1, #f9ab00); }
.mic .mark.info { background: var(--mic-accent); }
.mic .mark.note { background: ${ui.note}; border-radius: 50%; }
.mic .mark.many { width: auto; min-width: 14px; height: 12px; margin-left: -7px; top: -1px; padding: 0 2px;
                  font-size: 9px; line-height: 12px; font-weight: 600; color: #fff; }
.mic .notes { border-top: 1px solid var(--mic-line); padding: 4px 8px; display: flex; flex-direction: column; gap: 2px; }
.mic .notes:empty { display: none; }
.mic .note { border-left: 3px solid ${ui.note}; padding: 1px 6px; cursor: pointer; }
.mic .note.here { background: var(--mic-cursor); }
.mic .note .who { color: var(--mic-muted); font-size: 11px; }
`;

// Annotations (s.annotate): notes [{id, seq, end_seq, text, author, target}]
// listed under a widget; the ones spanning the cursor (when the widget has
// one) highlighted; a click moves the cursor to the note.
export function notesStrip(model) {
  const box = h("div", { class: "notes" });
  function draw() {
    const cursor = model.get("cursor");
    box.replaceChildren(...(model.get("notes") || []).map((n) => {
      const here = typeof cursor === "number" && cursor >= n.seq && cursor <= n.end_seq;
      const el = h("div", { class: `note${here ? " here" : ""}`, "data-note": n.id, title: `#${n.seq}${n.end_seq !== n.seq ? `–#${n.end_seq}` : ""}` },
        "✎ ", n.text, " ", h("span", { class: "who" }, `— ${n.author} · ${n.target}`));
      el.addEventListener("click", () => {
        if (typeof model.get("cursor") === "number") { model.set("cursor", n.seq); model.save_changes(); }
      });
      return el;
    }));
  }
  model.on("change:notes", draw);
  model.on("change:cursor", draw);
  draw();
  return box;
}

// The resolved theme colours, for canvas painting (read at each paint: the
// theme can change while a notebook is open).
export function themeColours(root) {
  const style = getComputedStyle(root);
  const get = (name, fallback) => style.getPropertyValue(name).trim() || fallback;
  return {
    text: get("--mic-text", ui.text), muted: get("--mic-muted", ui.muted), line: get("--mic-line", ui.line),
    panel: get("--mic-panel", ui.panel), bg: get("--mic-bg", "#ffffff"), faint: get("--mic-faint", "#f1f3f4"),
    selected: get("--mic-selected", "#fef7e0"), cursor: get("--mic-cursor", "#e8f0fe"),
    crash: get("--mic-crash", palette.crash), accent: get("--mic-accent", palette.call),
  };
}

// A tooltip inside the widget's root, placed at the pointer. (position:
// fixed would be relative to JupyterLab's panel, which has contain: strict,
// and land hundreds of pixels away.)
export function tooltip(root) {
  const tip = h("div", { class: "tip", style: { display: "none" } });
  root.append(tip);
  return {
    el: tip,
    show(ev, text) {
      tip.textContent = text;
      tip.style.display = "block";
      const box = root.getBoundingClientRect();
      const x = ev.clientX - box.left, y = ev.clientY - box.top;
      const w = tip.offsetWidth, hgt = tip.offsetHeight;
      tip.style.left = `${Math.max(2, x + 14 + w > box.width ? x - w - 10 : x + 14)}px`;
      tip.style.top = `${Math.max(2, y + 14 + hgt > box.height ? y - hgt - 8 : y + 14)}px`;
    },
    hide() { tip.style.display = "none"; },
  };
}

// Calls fn when el changes size (a JupyterLab panel resized, the sidebar
// opened); returns the disconnect.
export function onResize(el, fn) {
  if (typeof ResizeObserver === "undefined") return () => {};
  let pending = false, last = "";
  const observer = new ResizeObserver(() => {
    const size = `${el.clientWidth}x${el.clientHeight}`;
    if (size === last || pending) return;
    last = size; pending = true;
    requestAnimationFrame(() => { pending = false; fn(); });
  });
  observer.observe(el);
  return () => observer.disconnect();
}

// Findings as marks along a track: marks [{seq, severity, text}] placed by
// position(mark) -> 0..1, clicked -> onPick(mark).
// Marks closer than `gap` (a fraction of the track) are one mark: a count on
// it, the worst severity's colour, every mark in its title, and each click
// picks the next of them (5 of 6 findings within 10 px were a blob).
const SEVERITY_RANK = { error: 3, warning: 2, info: 1, note: 0 };
export function markTrack(marks, position, onPick, gap = 0.015) {
  const track = h("div", { class: "marks" });
  const placed = [];
  for (const m of marks) {
    const p = position(m);
    if (p === null || p === undefined || Number.isNaN(p)) continue;
    placed.push([Math.max(0, Math.min(1, p)), m]);
  }
  placed.sort((a, b) => a[0] - b[0]);
  for (let i = 0; i < placed.length;) {
    let j = i + 1;
    while (j < placed.length && placed[j][0] - placed[i][0] < gap) j++;
    const group = placed.slice(i, j).map(([, m]) => m);
    const rank = (m) => SEVERITY_RANK[m.severity || "info"] ?? 1;
    const worst = group.reduce((a, m) => (rank(m) > rank(a) ? m : a), group[0]);
    const many = group.length > 1;
    const b = h("button", { class: `mark ${worst.severity || "info"}${many ? " many" : ""}`,
                            title: many ? group.map((m) => `#${m.seq} ${m.text}`).join("\n") : group[0].text,
                            "data-seq": group[0].seq, "data-count": group.length,
                            style: { left: `${placed[i][0] * 100}%` } }, many ? String(group.length) : "");
    let next = 0;
    b.addEventListener("click", (e) => { e.stopPropagation(); onPick(group[next]); next = (next + 1) % group.length; });
    track.append(b);
    i = j;
  }
  return track;
}

// "1.5 ms", "320 µs", "2.1 s"
export function fmtUs(us) {
  if (us === null || us === undefined || Number.isNaN(us)) return "";
  const a = Math.abs(us);
  if (a >= 1e6) return `${(us / 1e6).toFixed(a >= 1e7 ? 1 : 2)} s`;
  if (a >= 1e3) return `${(us / 1e3).toFixed(a >= 1e4 ? 1 : 2)} ms`;
  return `${Math.round(us)} µs`;
}

// A tick step of 1, 2 or 5 x 10^n covering about `target` units.
export function niceStep(target) {
  const p = Math.pow(10, Math.floor(Math.log10(Math.max(target, 1e-9))));
  const m = target / p;
  return (m <= 1 ? 1 : m <= 2 ? 2 : m <= 5 ? 5 : 10) * p;
}

// The first index i with arr[i] > x (arr sorted ascending).
export function upperBound(arr, x) {
  let lo = 0, hi = arr.length;
  while (lo < hi) { const mid = (lo + hi) >> 1; if (arr[mid] <= x) lo = mid + 1; else hi = mid; }
  return lo;
}

// Canvas labels that never print over each other: each is measured, cut to
// the room it has (with "…"), and drawn only where no label of this frame
// already is and inside `area` {x0, y0, x1, y1} (the painter's coordinates);
// what does not fit is left to the tooltip. reserve() keeps a box clear (a
// glyph drawn later). The font's own box (not the ink's) is what is kept
// clear, so two labels never touch. Quick to refuse: a crowded row costs a
// lookup, not a measurement.
export function labelPlacer(ctx, area) {
  const B = 16, buckets = new Map();
  let ascent = 9, descent = 3, font = "";
  const hits = (x0, y0, x1, y1) => {
    for (let b = Math.floor(y0 / B); b <= Math.floor(y1 / B); b++)
      for (const q of buckets.get(b) || []) if (x0 < q[2] && x1 > q[0] && y0 < q[3] && y1 > q[1]) return true;
    return false;
  };
  const inside = (x0, y0, x1, y1) => x0 >= area.x0 && x1 <= area.x1 && y0 >= area.y0 && y1 <= area.y1;
  function reserve(x0, y0, x1, y1) {
    const box = [x0, y0, x1, y1];
    for (let b = Math.floor(y0 / B); b <= Math.floor(y1 / B); b++) {
      if (!buckets.has(b)) buckets.set(b, []);
      buckets.get(b).push(box);
    }
  }
  // text at (x, y) (alphabetic baseline; align "left", "center" or "right"),
  // at most `room` px wide, on a `plate` of that colour if given (so a line or
  // a band under it does not run through it); returns whether it was drawn
  function place(text, x, y, room, align = "left", plate = null) {
    if (ctx.font !== font) {
      font = ctx.font;
      const m = ctx.measureText("Mg");
      ascent = m.fontBoundingBoxAscent ?? 10; descent = m.fontBoundingBoxDescent ?? 3;
    }
    const y0 = y - ascent, y1 = y + descent;
    const left = (w) => align === "center" ? x - w / 2 : align === "right" ? x - w : x;
    const least = Math.min(room, 14);        // refuse a crowded spot before measuring
    if (room < 8 || !inside(left(least), y0, left(least) + least, y1) || hits(left(least), y0, left(least) + least, y1)) return false;
    let s = String(text), w = ctx.measureText(s).width;
    if (w > room) {
      let n = Math.max(1, Math.floor(s.length * room / w));
      do { s = s.slice(0, n - 1) + "…"; w = ctx.measureText(s).width; n--; } while (w > room && n > 1);
      if (w > room) return false;
    }
    const x0 = left(w);
    if (!inside(x0, y0, x0 + w, y1) || hits(x0, y0, x0 + w, y1)) return false;
    const was = ctx.textAlign;
    ctx.textAlign = "left";
    if (plate) {
      const ink = ctx.fillStyle;
      ctx.fillStyle = plate; ctx.fillRect(x0 - 1, y0 + 1, w + 2, y1 - y0 - 1); ctx.fillStyle = ink;
    }
    ctx.fillText(s, x0, y);
    ctx.textAlign = was;
    reserve(x0, y0, x0 + w, y1);
    return true;
  }
  return { place, reserve };
}

// Calls fn when JupyterLab's theme changes (light <-> dark) or, outside
// JupyterLab, the system's: canvas painters read colours at each paint, so
// they must paint again. Returns the disconnect.
export function onThemeChange(fn) {
  let pending = false;
  const again = () => {
    if (pending) return;
    pending = true;
    // the theme's stylesheet may land a moment after the attribute: paint now and once more
    requestAnimationFrame(() => { pending = false; fn(); setTimeout(fn, 250); });
  };
  const observer = typeof MutationObserver === "undefined" ? null : new MutationObserver(again);
  if (observer && document.body) observer.observe(document.body, { attributes: true, attributeFilter: ["data-jp-theme-light", "data-jp-theme-name"] });
  const media = typeof matchMedia === "function" ? matchMedia("(prefers-color-scheme: dark)") : null;
  if (media && media.addEventListener) media.addEventListener("change", again);
  return () => { if (observer) observer.disconnect(); if (media && media.removeEventListener) media.removeEventListener("change", again); };
}
