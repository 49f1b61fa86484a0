// Shared helpers for the widgets: DOM, colours, styles. No dependencies.

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

export const baseCss = `
.mic { font: 12px/1.4 -apple-system, BlinkMacSystemFont, "Segoe UI", Roboto, sans-serif;
       color: #202124; border: 1px solid #dadce0; border-radius: 6px; overflow: hidden; }
.mic .bar { display: flex; gap: 6px; align-items: center; padding: 6px 8px;
            background: #f8f9fa; border-bottom: 1px solid #dadce0; flex-wrap: wrap; }
.mic input, .mic select, .mic button { font: inherit; padding: 2px 6px; }
.mic .muted { color: #5f6368; }
.mic .mono { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; }
.mic .tip { position: fixed; z-index: 1000; max-width: 520px; background: #202124; color: #fff;
            padding: 6px 8px; border-radius: 4px; white-space: pre-wrap; pointer-events: none;
            font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: 11px; }
`;
