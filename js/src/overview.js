// SystemOverview: the node at a glance, like observer's first tab. Tabs:
// system (schedulers' utilisation, memory by category, counters and limits),
// processes (the tops by mailbox, memory, reductions in the window), ETS
// tables, ports, recorded (the tops as a trace sampled them, at the time the
// slider picks) and the supervision tree (the SupervisionTree widget itself,
// rendered here through anywidget's host). A click on a process shows its
// details; "show in tree" opens the tree on it.
// Model (traitlets are the source of truth):
//   figures: {node, as_of, window_ms, system, totals, flag: {before, after},
//             schedulers: [{id, type, active, total, utilisation}], memory: [{category, bytes}],
//             ets: [...], ports: [...], processes: [{pid, name, ..., top: [by]}]}
//   recorded: [{pid, name, mailbox_len, mailbox_at_ms, memory_bytes, reductions_per_s, vitals_at_ms, top}]
//   span_ms, at_ms (null: the end)   tab   selected (pid)   details   live   can_read
//   tree_ref ("anywidget:<id>")   error
//   Python answers {event: "refresh"} by reading the node, {event: "tree", pid} by opening the tree.
import { h, input, injectStyle, baseCss, notesStrip } from "./common.js";

const TABS = [["system", "system"], ["processes", "processes"], ["ets", "ETS"], ["ports", "ports"],
              ["recorded", "recorded"], ["tree", "tree"]];
const LIVE_TOPS = [["mailbox", "message_queue_len", "mailbox"], ["memory", "memory", "memory"],
                   ["reductions", "reductions_in_window", "reductions in window"]];
const RECORDED_TOPS = [["mailbox", "mailbox_len", "mailbox"], ["memory", "memory_bytes", "memory"],
                       ["reductions", "reductions_per_s", "reductions/s"]];
const COMPUTED = "computed";

const num = (v) => (v === null || v === undefined ? "" : Math.round(v).toLocaleString("en-US"));
function bytes(v) {
  if (v === null || v === undefined) return "";
  const a = Math.abs(v);
  if (a >= 1 << 30) return `${(v / (1 << 30)).toFixed(2)} GiB`;
  if (a >= 1 << 20) return `${(v / (1 << 20)).toFixed(1)} MiB`;
  if (a >= 1 << 10) return `${(v / (1 << 10)).toFixed(1)} KiB`;
  return `${v} B`;
}
const pct = (x) => (x === null || x === undefined ? "" : `${(x * 100).toFixed(1)}%`);

function render({ model, el, host }) {
  const root = h("div", { class: "mic mic-overview" });
  injectStyle(root, baseCss + `
    .mic-overview .tabs { display: flex; gap: 2px; flex-wrap: wrap; }
    .mic-overview .tabs button.on { border-color: var(--mic-accent); color: var(--mic-accent); font-weight: 600; }
    .mic-overview .pane { padding: 6px 8px; max-height: 460px; overflow: auto; }
    .mic-overview .grid { display: flex; flex-wrap: wrap; gap: 12px; }
    .mic-overview .box { flex: 1 1 260px; min-width: 0; }
    .mic-overview h4 { margin: 4px 0; font-size: 12px; }
    .mic-overview .kv { display: grid; grid-template-columns: max-content 1fr; gap: 1px 10px; }
    .mic-overview .barrow { display: grid; grid-template-columns: minmax(60px, max-content) 1fr 64px; gap: 6px; align-items: center; }
    .mic-overview .track { height: 9px; background: var(--mic-faint); border-radius: 2px; overflow: hidden; }
    .mic-overview .fill { height: 100%; background: var(--mic-accent); }
    .mic-overview .fill.dirty { opacity: .55; }
    .mic-overview .scroll { overflow-x: auto; }
    .mic-overview table { border-collapse: collapse; width: 100%; }
    .mic-overview th, .mic-overview td { padding: 1px 6px; text-align: left; white-space: nowrap; border-bottom: 1px solid var(--mic-line); }
    .mic-overview td.n, .mic-overview th.n { text-align: right; font-variant-numeric: tabular-nums; }
    .mic-overview td.who { max-width: 260px; overflow: hidden; text-overflow: ellipsis; }
    .mic-overview tr.proc { cursor: pointer; } .mic-overview tr.proc:hover { background: var(--mic-faint); }
    .mic-overview tr.proc.sel { background: var(--mic-selected); }
    .mic-overview .computed { color: var(--mic-muted); font-style: italic; }
    .mic-overview .err { color: var(--mic-crash); padding: 4px 8px; }
    .mic-overview .err:empty { display: none; }
    .mic-overview .details { border-top: 1px solid var(--mic-line); padding: 6px 8px; max-height: 220px; overflow: auto; }
    .mic-overview .details:empty { display: none; }
    .mic-overview .details pre { margin: 4px 0; white-space: pre-wrap; }
    .mic-overview input[type=range] { flex: 1 1 160px; min-width: 100px; }`);
  const tabs = h("span", { class: "tabs" });
  const asOf = h("span", { class: "muted as-of" });
  const refresh = h("button", { class: "refresh", onclick: () => model.send({ event: "refresh" }) }, "refresh");
  const live = input({ type: "checkbox", class: "live" });
  const liveLabel = h("label", { class: "muted" }, live, " live");
  const error = h("div", { class: "err" });
  const pane = h("div", { class: "pane" });
  const treePane = h("div", { class: "tree-pane" });
  const details = h("div", { class: "details" });
  root.append(h("div", { class: "bar" }, tabs, asOf, refresh, liveLabel), error, pane, treePane, details);
  root.append(notesStrip(model));
  el.append(root);

  const figures = () => model.get("figures") || {};
  const pick = (pid) => { if (!pid) return; model.set("selected", pid); model.save_changes(); };

  function table(head, rows) {
    return h("div", { class: "scroll" }, h("table", {},
      h("tr", {}, head.map(([label, cls, title]) => h("th", { class: cls || "", title: title || "" }, label))), rows));
  }

  function procRow(pid, cells) {
    const row = h("tr", { class: `proc${pid === model.get("selected") ? " sel" : ""}`, "data-pid": pid }, cells);
    row.addEventListener("click", () => pick(pid));
    return row;
  }

  function who(r) {
    return h("td", { class: "who", title: `${r.name || ""} ${r.pid}` }, r.name ? [r.name, " ", h("span", { class: "muted mono" }, r.pid)] : h("span", { class: "mono" }, r.pid));
  }

  function tops(rows, measures, extra) {
    return h("div", { class: "grid" }, measures.map(([by, key, label]) => {
      const ranked = rows.filter((r) => (r.top || []).includes(by)).sort((a, b) => (b[key] || 0) - (a[key] || 0));
      const computed = key === "reductions_in_window" || key === "reductions_per_s";
      const fmt = key.startsWith("memory") ? bytes : num;
      return h("div", { class: "box", "data-top": by },
        h("h4", {}, `by ${label}`, computed ? h("span", { class: "computed", title: computed && key === "reductions_per_s" ? "reductions between a process's last two samples over the time between them" : "the difference of two readings of each process's reductions, the window apart" }, ` (${COMPUTED})`) : null),
        ranked.length ? table([["process"], [label, "n"], ...(extra ? [[extra.label, "n"]] : [])],
          ranked.map((r) => procRow(r.pid, [who(r), h("td", { class: "n" }, fmt(r[key])), ...(extra ? [h("td", { class: "n muted" }, extra.value(r, by))] : [])])))
          : h("div", { class: "muted" }, by === "mailbox" ? "no process had a message waiting" : by === "reductions" ? "no process ran" : "none"));
    }));
  }

  function systemPane() {
    const f = figures();
    const s = f.system || {};
    const kv = (pairs) => h("div", { class: "kv" }, pairs.flatMap(([k, v]) => [h("span", { class: "muted" }, k), h("span", {}, v)]));
    const scheds = f.schedulers || [];
    const byType = {};
    for (const r of scheds) if (r.total > 0) { const t = (byType[r.type] ||= [0, 0]); t[0] += r.active; t[1] += r.total; }
    const flag = f.flag || {};
    const flagNote = flag.before ? "scheduler_wall_time was already on (held by another process): left as it was"
      : flag.after ? "scheduler_wall_time is on after the read (another process turned it on meanwhile)"
      : `scheduler_wall_time was off: on for the ${f.window_ms} ms window, then off again`;
    const mem = f.memory || [];
    const total = (mem.find((m) => m.category === "total") || {}).bytes || 1;
    return h("div", { class: "grid" },
      h("div", { class: "box" }, h("h4", {}, "node"), kv([
        ["processes", `${num(s.process_count)} / ${num(s.process_limit)}`],
        ["ports", `${num(s.port_count)} / ${num(s.port_limit)}`],
        ["ETS tables", `${num(s.ets_count)} / ${num(s.ets_limit)}`],
        ["atoms", `${num(s.atom_count)} / ${num(s.atom_limit)}`],
        ["run queue", num(s.run_queue)],
        ["uptime", `${num((s.uptime_ms || 0) / 1000)} s`],
        ["I/O in / out", `${bytes(s.io_input_bytes)} / ${bytes(s.io_output_bytes)}`],
        ["OTP", s.otp_release || ""], ["schedulers", `${num(s.schedulers_online)} online of ${num(s.schedulers)}, ${num(s.dirty_cpu_schedulers)} dirty CPU, ${num(s.dirty_io_schedulers)} dirty I/O`]])),
      h("div", { class: "box schedulers" },
        h("h4", {}, "scheduler utilisation ", h("span", { class: "computed", title: "active / total time of each scheduler thread over the window (two readings of erlang:statistics(scheduler_wall_time_all))" }, `(${COMPUTED}, over ${f.window_ms} ms)`)),
        h("div", { class: "muted" }, Object.entries(byType).map(([t, [a, tot]]) => `${t.replace("_", " ")} ${pct(a / tot)}`).join(" · ")),
        scheds.filter((r) => r.type !== "dirty_io").map((r) => h("div", { class: "barrow", "data-scheduler": r.id },
          h("span", { class: "muted" }, `${r.type === "normal" ? "" : "dirty "}${r.id}`),
          h("span", { class: "track" }, h("span", { class: `fill${r.type === "normal" ? "" : " dirty"}`, style: { display: "block", width: `${Math.min(100, (r.utilisation || 0) * 100)}%` } })),
          h("span", { class: "n" }, pct(r.utilisation)))),
        h("div", { class: "muted", style: { fontSize: "11px" } }, flagNote)),
      h("div", { class: "box memory" }, h("h4", {}, "memory ", h("span", { class: "muted" }, "(erlang:memory())")),
        mem.map((m) => h("div", { class: "barrow", "data-category": m.category },
          h("span", { class: "muted" }, m.category),
          h("span", { class: "track" }, h("span", { class: "fill", style: { display: "block", width: `${Math.min(100, (m.bytes / total) * 100)}%` } })),
          h("span", { class: "n" }, bytes(m.bytes))))));
  }

  function etsPane() {
    const f = figures();
    const rows = f.ets || [];
    return h("div", {}, h("div", { class: "muted" }, `the ${rows.length} largest of ${num((f.totals || {}).ets)} tables`),
      table([["table"], ["owner"], ["size", "n"], ["memory", "n", "words × word size (computed)"], ["type"], ["protection"]],
        rows.map((r) => procRow(r.owner, [h("td", { class: "who mono" }, r.table), h("td", { class: "who" }, r.owner_name || h("span", { class: "mono" }, r.owner)),
          h("td", { class: "n" }, num(r.size)), h("td", { class: "n", title: `${num(r.memory_words)} words` }, bytes(r.memory_bytes)), h("td", {}, r.type), h("td", {}, r.protection)]))));
  }

  function portsPane() {
    const f = figures();
    const rows = f.ports || [];
    return h("div", {}, h("div", { class: "muted" }, `the ${rows.length} busiest (input + output) of ${num((f.totals || {}).ports)} ports`),
      table([["port"], ["name"], ["connected"], ["input", "n"], ["output", "n"], ["memory", "n"], ["queue", "n"], ["os pid", "n"]],
        rows.map((r) => procRow(r.connected, [h("td", { class: "mono" }, r.port), h("td", { class: "who" }, r.name || ""),
          h("td", { class: "who" }, r.connected_name || h("span", { class: "mono" }, r.connected || "")),
          h("td", { class: "n" }, bytes(r.input)), h("td", { class: "n" }, bytes(r.output)), h("td", { class: "n" }, bytes(r.memory)),
          h("td", { class: "n" }, num(r.queue_size)), h("td", { class: "n" }, r.os_pid === null ? "" : String(r.os_pid))]))));
  }

  function recordedPane() {
    const span = model.get("span_ms");
    const rows = model.get("recorded") || [];
    if (span === null || span === undefined) return h("div", { class: "empty" }, "nothing recorded yet: a trace (s.trace()) samples each traced process's mailbox, memory and reductions");
    const at = model.get("at_ms");
    const slider = input({ type: "range", class: "at", min: 0, max: span, step: Math.max(span / 500, 0.001), value: at === null ? span : at });
    const label = h("span", { class: "muted" }, `at ${num(at === null ? span : at)} ms of ${num(span)} ms`);
    slider.addEventListener("input", () => { label.textContent = `at ${num(+slider.value)} ms of ${num(span)} ms`; });
    slider.addEventListener("change", () => { model.set("at_ms", +slider.value >= span ? null : +slider.value); model.save_changes(); });
    const when = { label: "sampled at", value: (r, by) => { const t = by === "mailbox" ? r.mailbox_at_ms : r.vitals_at_ms; return t === null || t === undefined ? "" : `${num(t)} ms`; } };
    return h("div", {}, h("div", { class: "bar", style: { background: "none", border: "none", padding: "0 0 6px" } }, slider, label),
      rows.length ? tops(rows, RECORDED_TOPS, when) : h("div", { class: "empty" }, "no process was sampled by then"));
  }

  async function treeTab() {
    const ref = model.get("tree_ref");
    if (!ref) {
      treePane.replaceChildren(h("div", { class: "pane" }, h("button", { class: "open-tree", onclick: () => model.send({ event: "tree", pid: model.get("selected") || "" }) }, "open the supervision tree")));
      return;
    }
    if (treePane.dataset.ref === ref) return;
    treePane.dataset.ref = ref;
    treePane.replaceChildren();
    if (!host || !host.getWidget) { treePane.append(h("div", { class: "empty" }, "this notebook's anywidget cannot nest widgets: show ov.tree in a cell")); return; }
    try { const child = await host.getWidget(ref); await child.render({ el: treePane }); }
    catch (e) { treePane.replaceChildren(h("div", { class: "err" }, `the tree did not render: ${e}`)); }
  }

  function draw() {
    const tab = model.get("tab");
    const f = figures();
    tabs.replaceChildren(...TABS.map(([key, label]) => {
      const off = !f.node && ["system", "processes", "ets", "ports"].includes(key);
      return h("button", { class: tab === key ? "on" : "", "data-tab": key, disabled: off, title: off ? "no node attached: the recording's tops only" : "",
                           onclick: () => { model.set("tab", key); model.save_changes(); } }, label);
    }));
    asOf.textContent = f.node ? `${f.node} · as of ${f.as_of}` : "a recording";
    refresh.style.display = liveLabel.style.display = model.get("can_read") ? "" : "none";
    error.textContent = model.get("error") || "";
    treePane.style.display = tab === "tree" ? "" : "none";
    pane.style.display = tab === "tree" ? "none" : "";
    if (tab === "tree") { treeTab(); return; }
    const content = tab === "system" ? systemPane() : tab === "processes" ? tops(f.processes || [], LIVE_TOPS)
      : tab === "ets" ? etsPane() : tab === "ports" ? portsPane() : recordedPane();
    pane.replaceChildren(content);
  }

  function drawDetails() {
    const d = model.get("details") || {};
    // the tree tab shows the tree's own details panel
    if ((!d.pid && !d.error) || model.get("tab") === "tree") { details.replaceChildren(); return; }
    const line = (label, items) => items && items.length ? h("div", {}, h("span", { class: "muted" }, `${label}: `), items.join(", ")) : null;
    const known = [...(figures().processes || []), ...(model.get("recorded") || [])].find((r) => r.pid === d.pid && r.name);
    details.replaceChildren(...[
      h("div", {}, h("b", {}, known ? known.name : "process"), " ", h("span", { class: "muted mono" }, d.pid || ""), " ",
        h("button", { class: "show-in-tree", onclick: () => model.send({ event: "tree", pid: d.pid }) }, "show in tree")),
      d.error ? h("div", { class: "err" }, d.error) : null,
      d.counters ? h("div", { class: "muted counters" }, d.counters, d.current_function ? ` · in ${d.current_function}` : "") : null,
      d.state ? h("pre", { class: "mono state" }, d.state) : null,
      line("links", d.links), line("monitors", d.monitors), line("monitored by", d.monitored_by)].filter(Boolean));
  }

  live.checked = !!model.get("live");
  live.addEventListener("change", () => { model.set("live", live.checked); model.save_changes(); });
  model.on("change:live", () => { live.checked = !!model.get("live"); });
  for (const name of ["figures", "recorded", "span_ms", "tab", "tree_ref", "error", "can_read", "selected"]) model.on(`change:${name}`, draw);
  model.on("change:details", drawDetails);
  model.on("change:tab", drawDetails);
  draw();
  drawDetails();
  el.dataset.ready = "1";
  return () => root.remove();
}

export default { render };
