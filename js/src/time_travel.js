// TimeTravel: a slider over the recording; the snapshot at the cursor, with
// what changed since the previous step highlighted and pinned at the top.
// Model:
//   n_events: int      cursor: seq (Python answers with snapshot)     proc: "" | pid/name to step within
//   snapshot: [{pid, name, alive, exit_text, state_text, mailbox: [text], mailbox_len, mailbox_basis,
//               current_callback, relations, diff_text, changed, ancestors: [pid],
//               line: the newest inspect_line of the process ("" none),
//               log: [text] its newest log lines (at most 3), oldest first}]
//   event_text: what happened at the cursor
//   marks: [{seq, severity, text}]   findings, as ticks under the slider
//   supervisors: [{pid, name}]        the "only this supervisor" menu
//   message: feedback from Python (an unknown process to step within)
import { h, input, legend, injectStyle, baseCss, markTrack, notesStrip } from "./common.js";

function render({ model, el }) {
  const root = h("div", { class: "mic mic-tt", tabindex: "0" });
  injectStyle(root, baseCss + `
    .mic-tt .slider-box { flex: 1; min-width: 200px; display: flex; flex-direction: column; }
    .mic-tt .slider { width: 100%; margin: 0; }
    .mic-tt .marks { margin: 0 7px; }
    .mic-tt { container-type: inline-size; }
    .mic-tt table { border-collapse: collapse; width: 100%; table-layout: fixed; }
    .mic-tt col.c-proc { width: 17%; } .mic-tt col.c-mail { width: 20%; }
    .mic-tt col.c-cb { width: 11%; } .mic-tt col.c-rel { width: 15%; }
    .mic-tt td, .mic-tt th { padding: 3px 8px; border-bottom: 1px solid var(--mic-faint);
                             vertical-align: top; text-align: left; overflow-wrap: anywhere; }
    .mic-tt td[data-label]::before { display: none; content: attr(data-label);
                             color: var(--mic-muted); font: 10px var(--jp-ui-font-family, sans-serif); }
    /* narrower than five readable columns (a split view, a small window): each
       process becomes a card, its name beside (or, narrower still, above) the rest */
    @container (max-width: 900px) {
      .mic-tt table, .mic-tt tr, .mic-tt td { display: block; }
      .mic-tt colgroup, .mic-tt tr.head { display: none; }
      .mic-tt tr { display: grid; grid-template-columns: minmax(0, 1fr) minmax(0, 2.6fr);
                   border-bottom: 1px solid var(--mic-line); padding: 2px 0; }
      .mic-tt td { border: none; grid-column: 2; padding: 1px 8px; }
      .mic-tt td.proc { grid-column: 1; grid-row: 1 / span 4; }
      .mic-tt td[data-label]::before { display: block; }
      .mic-tt td.empty-cell { display: none; }
    }
    @container (max-width: 520px) {
      .mic-tt tr { grid-template-columns: minmax(0, 1fr); }
      .mic-tt td, .mic-tt td.proc { grid-column: 1; grid-row: auto; }
      .mic-tt .bar .proc { width: 100px; } .mic-tt .slider-box { min-width: 120px; }
    }
    .mic-tt th { position: sticky; top: 0; background: var(--mic-panel); z-index: 1; }
    .mic-tt tr.changed { background: var(--mic-changed); }
    .mic-tt tr.pinned td:first-child { box-shadow: inset 3px 0 0 var(--jp-warn-color1, #f9ab00); }
    .mic-tt tr.dead { color: var(--mic-dead); }
    .mic-tt .exit { color: var(--mic-dead); } .mic-tt .exit.crashed { color: var(--mic-crash); }
    .mic-tt .line { color: var(--mic-muted); font-style: italic; white-space: pre-wrap; }
    .mic-tt .log { color: var(--mic-muted); white-space: pre-wrap; }
    .mic-tt .diff { color: var(--mic-diff); white-space: pre-wrap; }
    .mic-tt .body { max-height: 360px; overflow: auto; }
    .mic-tt .event { padding: 4px 8px; border-bottom: 1px solid var(--mic-line); }
    .mic-tt .key { padding: 4px 8px; }
    .mic-tt .message { padding: 4px 8px; color: var(--mic-crash); }
    .mic-tt .message:empty { display: none; }`);
  const slider = input({ type: "range", min: "0", step: "1", class: "slider" });
  const number = input({ type: "number", min: "0", step: "1", class: "seq", style: { width: "80px" } });
  const prev = h("button", { class: "prev", title: "previous event (←)" }, "◀");
  const next = h("button", { class: "next", title: "next event (→)" }, "▶");
  const proc = input({ type: "text", placeholder: "step within process…", class: "proc", style: { width: "150px" } });
  const onlyChanged = input({ type: "checkbox", class: "only-changed" });
  const supervisor = h("select", { class: "supervisor", title: "only the processes under this supervisor" });
  const sliderBox = h("div", { class: "slider-box" }, slider);
  const event = h("div", { class: "event mono" });
  const message = h("div", { class: "message" });
  const body = h("div", { class: "body" });
  root.append(h("div", { class: "bar" }, prev, sliderBox, next, h("span", { class: "muted" }, "seq"), number, proc,
                 h("label", { class: "muted" }, onlyChanged, " only changed"), supervisor),
              message, event, body);
  root.append(h("div", { class: "key" }, legend(["crashed", "exited"])));   // every widget's vocabulary
  root.append(notesStrip(model));   // annotations (s.annotate)
  el.append(root);
  let local = "";   // feedback of our own (an out-of-range seq), next to Python's

  function step(delta) {
    // Python moves the cursor (it knows each process's events when stepping within one).
    model.send({ event: "step", delta });
  }

  function drawMarks() {
    const n = Math.max(1, (model.get("n_events") || 1) - 1);
    const track = markTrack(model.get("marks") || [], (m) => m.seq / n,
                            (m) => { model.set("cursor", m.seq); model.save_changes(); });
    sliderBox.replaceChildren(slider, track);
  }

  function drawSupervisors() {
    const chosen = supervisor.value;
    const options = model.get("supervisors") || [];
    supervisor.replaceChildren(h("option", { value: "" }, "every supervisor"),
      ...options.map((s) => h("option", { value: s.pid }, s.name)));
    supervisor.value = chosen;
    supervisor.style.display = options.length ? "" : "none";
  }

  function draw() {
    const n = model.get("n_events") || 0, cursor = model.get("cursor");
    slider.max = String(Math.max(0, n - 1));
    slider.value = String(cursor);
    number.value = String(cursor);
    event.textContent = model.get("event_text") || "";
    message.textContent = [local, model.get("message") || ""].filter(Boolean).join(" · ");
    let rows = model.get("snapshot") || [];
    if (supervisor.value) rows = rows.filter((r) => r.pid === supervisor.value || (r.ancestors || []).includes(supervisor.value));
    if (onlyChanged.checked) rows = rows.filter((r) => r.changed);
    // what changed comes first: at 80 processes it would otherwise be off screen
    const changed = rows.filter((r) => r.changed), rest = rows.filter((r) => !r.changed);
    // a cell with its caption (shown when the row is a card), hidden there when empty
    const cell = (cls, label, attrs, ...content) => {
      const kept = content.filter((c) => c !== null && c !== undefined && c !== "");
      return h("td", { ...attrs, class: `${cls}${kept.length ? "" : " empty-cell"}`, "data-label": label }, ...kept);
    };
    const row = (r, pinned) => h("tr", { class: `${r.changed ? "changed" : ""} ${pinned ? "pinned" : ""} ${r.alive ? "" : "dead"}`, "data-pid": r.pid },
      h("td", { class: "proc" }, h("div", {}, r.name || r.pid),
        h("div", { class: "muted mono" }, r.pid),
        r.alive ? null : h("div", { class: `exit mono${r.crashed ? " crashed" : ""}` },
          `${r.crashed ? "✖" : "◌"} ${r.exit_text || "exited"}`)),
      cell("state mono", "state", {}, r.state_text || null, r.diff_text ? h("div", { class: "diff" }, r.diff_text) : null,
        r.line ? h("div", { class: "line", title: "the newest inspect_line of this process" }, `⟵ ${r.line}`) : null,
        ...(r.log || []).map((text) => h("div", { class: "log", title: "what the node logged about this process, newest last" }, `▸ ${text}`))),
      // an estimate between the node's samples reads "≈", its derivation on hover
      cell("mail mono", "mailbox", { title: r.mailbox_basis === "node" ? "the node's own count" : (r.mailbox_basis || "") },
        r.mailbox_len ? `${r.mailbox_basis && r.mailbox_basis !== "node" ? "≈" : ""}${r.mailbox_len}: ${r.mailbox.join(", ")}` : null),
      cell("cb", "callback", {}, r.current_callback || null),
      cell("relations", "links & monitors", {}, r.relations || null));
    const table = h("table", {},
      h("colgroup", {}, ...["c-proc", "c-state", "c-mail", "c-cb", "c-rel"].map((c) => h("col", { class: c }))),
      h("tr", { class: "head" }, ...["process", "state", "mailbox", "callback", "links & monitors"].map((t) => h("th", {}, t))),
      ...changed.map((r) => row(r, true)), ...rest.map((r) => row(r, false)));
    if (!rows.length) body.replaceChildren(h("div", { class: "empty" }, n ? "no process matches the filters" : "the recording is empty"));
    else body.replaceChildren(table);
    body.scrollTop = 0;     // the pinned rows are at the top
    el.dataset.cursor = String(cursor);
  }

  function seek(value) {
    const n = model.get("n_events") || 0;
    const v = Math.round(Number(value));
    local = "";
    if (!Number.isFinite(v) || v < 0 || v > n - 1) {
      local = `seq ${value} is outside the recording: seqs run from 0 to ${Math.max(0, n - 1)}`;
      draw();
      return;
    }
    model.set("cursor", v); model.save_changes();
  }

  slider.addEventListener("input", () => seek(slider.value));
  number.addEventListener("change", () => seek(number.value));
  prev.addEventListener("click", () => step(-1));
  next.addEventListener("click", () => step(+1));
  proc.value = model.get("proc") || "";
  proc.addEventListener("change", () => { model.set("proc", proc.value.trim()); model.save_changes(); });
  onlyChanged.addEventListener("change", draw);
  supervisor.addEventListener("change", draw);
  root.addEventListener("keydown", (e) => {
    if (e.target !== root && e.target !== slider) return;
    if (e.key === "ArrowRight") { e.preventDefault(); step(+1); }
    if (e.key === "ArrowLeft") { e.preventDefault(); step(-1); }
  });
  for (const name of ["snapshot", "cursor", "n_events", "event_text", "message"]) model.on(`change:${name}`, () => { if (name === "cursor") local = ""; draw(); });
  model.on("change:marks", drawMarks);
  model.on("change:n_events", drawMarks);
  model.on("change:supervisors", () => { drawSupervisors(); draw(); });
  // A table (cards when narrow, by a container query) and percentage-placed ticks:
  // CSS reflows them on resize, no observer needed.
  drawSupervisors();
  drawMarks();
  draw();
  return () => root.remove();
}

export default { render };
