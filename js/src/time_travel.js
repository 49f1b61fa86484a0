// TimeTravel: a slider over the recording; the snapshot at the cursor, with
// what changed since the previous step highlighted.
// Model:
//   n_events: int      cursor: seq (Python answers with snapshot)     proc: "" | pid/name to step within
//   snapshot: [{pid, name, alive, state_text, mailbox: [text], mailbox_len, current_callback,
//               relations: "links A · monitors B · monitored by C", diff_text, changed}]
//   event_text: what happened at the cursor
import { h, input, palette, injectStyle, baseCss } from "./common.js";

function render({ model, el }) {
  const root = h("div", { class: "mic mic-tt", tabindex: "0" });
  injectStyle(root, baseCss + `
    .mic-tt .slider { flex: 1; min-width: 200px; }
    .mic-tt table { border-collapse: collapse; width: 100%; }
    .mic-tt td, .mic-tt th { padding: 3px 8px; border-bottom: 1px solid #f1f3f4; vertical-align: top; text-align: left; }
    .mic-tt tr.changed { background: #fef7e0; }
    .mic-tt tr.dead { color: #9aa0a6; }
    .mic-tt .diff { color: #b06000; white-space: pre-wrap; }
    .mic-tt .body { max-height: 360px; overflow: auto; }
    .mic-tt .event { padding: 4px 8px; border-bottom: 1px solid #dadce0; }`);
  const slider = input({ type: "range", min: "0", step: "1", class: "slider" });
  const number = input({ type: "number", min: "0", step: "1", class: "seq", style: { width: "80px" } });
  const prev = h("button", { class: "prev", title: "previous event (←)" }, "◀");
  const next = h("button", { class: "next", title: "next event (→)" }, "▶");
  const proc = input({ type: "text", placeholder: "step within process…", class: "proc", style: { width: "150px" } });
  const event = h("div", { class: "event mono" });
  const body = h("div", { class: "body" });
  root.append(h("div", { class: "bar" }, prev, slider, next, h("span", { class: "muted" }, "seq"), number, proc), event, body);
  el.append(root);

  function step(delta) {
    // Python moves the cursor (it knows each process's events when stepping within one).
    model.send({ event: "step", delta });
  }

  function draw() {
    const n = model.get("n_events") || 0, cursor = model.get("cursor");
    slider.max = String(Math.max(0, n - 1));
    slider.value = String(cursor);
    number.value = String(cursor);
    event.textContent = model.get("event_text") || "";
    const rows = model.get("snapshot") || [];
    const table = h("table", {},
      h("tr", {}, ...["process", "state", "mailbox", "callback", "links & monitors"].map((t) => h("th", {}, t))),
      ...rows.map((r) => h("tr", { class: `${r.changed ? "changed" : ""} ${r.alive ? "" : "dead"}`, "data-pid": r.pid },
        h("td", {}, h("div", {}, r.name || r.pid), h("div", { class: "muted mono" }, r.pid + (r.alive ? "" : " · exited"))),
        h("td", { class: "mono" }, r.state_text || "", r.diff_text ? h("div", { class: "diff" }, r.diff_text) : null),
        h("td", { class: "mono" }, r.mailbox_len ? `${r.mailbox_len}: ${r.mailbox.join(", ")}` : ""),
        h("td", {}, r.current_callback || ""),
        h("td", { class: "relations" }, r.relations || ""))));
    body.replaceChildren(table);
    el.dataset.cursor = String(cursor);
  }

  slider.addEventListener("input", () => { model.set("cursor", Number(slider.value)); model.save_changes(); });
  number.addEventListener("change", () => { model.set("cursor", Number(number.value)); model.save_changes(); });
  prev.addEventListener("click", () => step(-1));
  next.addEventListener("click", () => step(+1));
  proc.value = model.get("proc") || "";
  proc.addEventListener("change", () => { model.set("proc", proc.value); model.save_changes(); });
  root.addEventListener("keydown", (e) => {
    if (e.target !== root && e.target !== slider) return;
    if (e.key === "ArrowRight") { e.preventDefault(); step(+1); }
    if (e.key === "ArrowLeft") { e.preventDefault(); step(-1); }
  });
  for (const name of ["snapshot", "cursor", "n_events", "event_text"]) model.on(`change:${name}`, draw);
  draw();
  return () => root.remove();
}

export default { render };
