// The runtime of a self-contained report (microscope_jupyter/report/): mounts
// each widget's own bundle with a model that lives in the page, so the
// widgets draw and respond (hover, zoom, the time-travel slider) with no
// kernel, no widget manager and no network.
//
// The page holds, once per widget kind, its bundle as a JSON string in
//   <script type="application/json" class="mic-bundle" data-kind="time_travel">
// and per widget a container with its static rendering and its state:
//   <div class="mic-report-widget" data-kind="time_travel" data-state="mic-w3">
//     <div class="mic-static">…the static HTML, shown where scripts are blocked…</div>
//   </div>
//   <script type="application/json" id="mic-w3">{"state": {...}, "frames": {...}}</script>
//
// frames: what a kernel would have answered, computed when the report was
// written: {"trait": "cursor", "values": {"12": {"snapshot": [...], ...}}}.
// Setting that trait snaps to the nearest computed value and applies its
// traits; a {event: "step", delta} message moves to the next one.

function readJson(el) {
  return JSON.parse(el.textContent);
}

function makeModel(state, frames) {
  const listeners = {};
  // exact frames (a tree's details by pid) are looked up as they are; the
  // others (a time travel's cursor) snap to the nearest kept one
  const exact = !!(frames && frames.exact);
  const values = frames && !exact ? Object.keys(frames.values).map(Number).sort((a, b) => a - b) : [];
  const fire = (k) => (listeners[`change:${k}`] || []).slice().forEach((f) => f());
  const model = {
    get: (k) => state[k],
    set(k, v) {
      if (exact && k === frames.trait) {
        state[k] = v;
        for (const [name, value] of Object.entries(frames.values[String(v)] || {})) { state[name] = value; fire(name); }
        fire(k);
        return;
      }
      if (frames && k === frames.trait && values.length) {
        v = nearest(values, Number(v));
        const apply = frames.values[String(v)] || {};
        state[k] = v;
        for (const [name, value] of Object.entries(apply)) { state[name] = value; fire(name); }
        fire(k);
        return;
      }
      state[k] = v;
      fire(k);
    },
    on(ev, f) { (listeners[ev] ||= []).push(f); },
    off(ev, f) {
      if (!ev) { for (const k of Object.keys(listeners)) delete listeners[k]; return; }
      listeners[ev] = (listeners[ev] || []).filter((g) => f && g !== f);
    },
    save_changes() {},
    send(msg) {
      // The one kernel request a report can answer: a step along the computed frames.
      if (frames && msg && msg.event === "step" && values.length) {
        const here = values.indexOf(nearest(values, Number(state[frames.trait])));
        const next = values[Math.max(0, Math.min(values.length - 1, here + (msg.delta || 1)))];
        model.set(frames.trait, next);
      }
    },
    widget_manager: {},
    // no kernel behind this model: widgets say so on what only a kernel can do
    offline: true,
  };
  return model;
}

function nearest(values, v) {
  let best = values[0];
  for (const x of values) if (Math.abs(x - v) < Math.abs(best - v)) best = x;
  return best;
}

async function importBundle(source) {
  const url = URL.createObjectURL(new Blob([source], { type: "text/javascript" }));
  try {
    return await import(url);
  } finally {
    URL.revokeObjectURL(url);
  }
}

async function mountAll() {
  const bundles = {};
  for (const el of document.querySelectorAll("script.mic-bundle")) bundles[el.dataset.kind] = readJson(el);
  const modules = {};
  for (const box of document.querySelectorAll(".mic-report-widget")) {
    const kind = box.dataset.kind;
    try {
      modules[kind] ||= await importBundle(bundles[kind]);
      const { state, frames } = readJson(document.getElementById(box.dataset.state));
      const live = document.createElement("div");
      live.className = "mic-live";
      box.append(live);
      await modules[kind].default.render({ model: makeModel(state, frames), el: live });
      const fallback = box.querySelector(".mic-static");
      if (fallback) fallback.style.display = "none";
      box.dataset.live = "1";
    } catch (err) {
      // The static rendering stays: a report must show something.
      box.dataset.live = "failed";
      console.warn(`BEAM Microscope report: the ${kind} widget could not start`, err);
    }
  }
  document.body.dataset.micReady = "1";
}

mountAll();
