// The operations page: the pipeline map (Cytoscape.js + dagre, vendored) and every figure, live.
// Snapshots arrive by Server-Sent Events (/ops/stream) once a second; when the stream errors the
// page polls /ops/snapshot.json every second instead and tries the stream again every 15 s.
(function () {
  "use strict";
  const script = document.getElementById("ops-script");
  const graph = JSON.parse(document.getElementById("ops-graph").textContent);
  const hooks = [];
  window.opsPage = { onSnapshot: (fn) => hooks.push(fn), last: null };

  const $ = (id) => document.getElementById(id);
  const esc = (s) => String(s ?? "").replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]);
  const num = (v) => (v === null || v === undefined ? "–" : String(v));
  const secs = (v) => (v === null || v === undefined ? "–" : v < 10 ? v.toFixed(1) + " s" : Math.round(v) + " s");
  const ms = (v) => (v === null || v === undefined ? "–" : v < 1000 ? Math.round(v) + " ms" : (v / 1000).toFixed(2) + " s");
  const link = (url, text) => (url ? `<a href="${esc(url)}">${esc(text)}</a>` : esc(text));

  cytoscape.use(cytoscapeDagre);
  const cy = cytoscape({
    container: $("ops-map"),
    elements: [...graph.nodes, ...graph.edges],
    wheelSensitivity: 0.2,
    style: [
      { selector: "node", style: { label: "data(label)", "font-size": 13, "text-valign": "center", "text-halign": "center",
          "text-wrap": "wrap", color: "#222" } },
      { selector: "node[kind='event']", style: { shape: "round-rectangle", "background-color": "#e8e8e8",
          width: "label", height: 22, padding: 6, "border-width": 1, "border-color": "#bbb" } },
      { selector: "node[kind='task'], node[kind='source']", style: { shape: "round-rectangle", "background-color": "#dff0d8",
          "border-width": 2, "border-color": "#3c763d", width: "label", height: "label", padding: 8, "font-size": 13 } },
      { selector: "node[kind='source']", style: { "background-color": "#d9edf7", "border-color": "#31708f" } },
      { selector: "node.busy", style: { "background-color": "#fcf8e3", "border-color": "#c09853" } },
      { selector: "node.flagged", style: { "background-color": "#f2dede", "border-color": "#c9302c", "border-width": 4, color: "#a94442" } },
      { selector: "edge", style: { width: 1.5, "curve-style": "bezier", "target-arrow-shape": "triangle",
          "line-color": "#999", "target-arrow-color": "#999", "font-size": 13, "font-weight": "bold", "text-background-color": "#fff",
          "text-background-opacity": 1, "text-background-padding": 2 } },
      { selector: "edge[kind='emits']", style: { "line-style": "dashed", "line-color": "#bbb", "target-arrow-color": "#bbb" } },
      { selector: "edge.waiting", style: { label: "data(waiting)", "line-color": "#c09853", "target-arrow-color": "#c09853", width: 3 } },
      { selector: "edge.flagged", style: { "line-color": "#c9302c", "target-arrow-color": "#c9302c" } },
    ],
  });
  // Laid out once the first snapshot has put the figures in the labels, so boxes have their size.
  const layout = { name: "dagre", rankDir: "LR", nodeSep: 6, rankSep: 45, edgeSep: 4, ranker: "network-simplex",
    nodeDimensionsIncludeLabels: true, fit: true, padding: 10 };
  window.opsPage.cy = cy;

  function renderMap(s) {
    const perTask = {};
    for (const sub of s.subscriptions) {
      const t = (perTask[sub.task] ||= { waiting: 0, oldest: null });
      t.waiting += sub.waiting;
      if (sub.oldest_age_s !== null) t.oldest = Math.max(t.oldest ?? 0, sub.oldest_age_s);
      const edge = cy.getElementById(`sub:${sub.event}->${sub.task}`);
      edge.data("waiting", sub.waiting);
      edge.toggleClass("waiting", sub.waiting > 0);
      edge.toggleClass("flagged", sub.waiting > 0 && (s.queues[sub.queue] || {}).flagged === true);
    }
    cy.nodes("[kind='task'], [kind='source']").forEach((node) => {
      const q = s.queues[node.data("queue")];
      const t = perTask[node.data("task")];
      const base = node.data("kind") === "source" ? node.data("label").split("\n")[0] : node.data("task").split(".").pop();
      if (!node.data("base")) node.data("base", base);
      let label = node.data("base");
      if (q) {
        label += `\n${node.data("queue")}: ready ${num(q.ready)} · consumers ${num(q.consumers)}`;
        if (t) label += `\nwaiting ${t.waiting} · oldest ${secs(t.oldest)}`;
      }
      const dead = s.dead_letters_by_task[node.data("task")];
      if (dead) label += `\ndead letters ${dead}`;
      node.data("label", label);
      node.toggleClass("flagged", !!(q && q.flagged));
      node.toggleClass("busy", !!(t && t.waiting > 0) && !(q && q.flagged));
    });
  }

  function rows(id, html) {
    const table = $(id);
    (table.tBodies[0] || table.createTBody()).innerHTML = html || `<tr><td colspan="20" class="muted">none</td></tr>`;
  }

  function renderTables(s) {
    rows("ops-queues", Object.entries(s.queues).map(([name, q]) => `
      <tr class="${q.flagged ? "flagged" : ""}" data-queue="${esc(name)}"><th>${esc(name)}</th>
        <td class="ready">${num(q.ready)}</td><td class="consumers">${q.consumers === null ? "not known" : q.consumers}</td>
        <td class="waiting">${q.waiting}</td><td>${q.in_progress}</td><td class="oldest">${secs(q.oldest_age_s)}</td>
        <td>${q.in_per_s}</td><td>${q.out_per_s}</td><td>${q.dead_letters}</td><td>${q.failures_5m}</td>
        <td class="flag">${q.flagged ? "⚠ " + esc(q.flags.join("; ")) : "ok"}</td></tr>`).join(""));
    rows("ops-stages", Object.entries(s.stages).map(([name, st]) =>
      `<tr><th>${esc(name)}</th><td>${esc(st.queue)}</td><td>${st.n}</td><td>${ms(st.p50_ms)}</td><td>${ms(st.p95_ms)}</td></tr>`).join(""));
    const o = s.outbox;
    rows("ops-outbox", `<tr><th>waiting to publish</th><td id="ops-outbox-waiting">${o.waiting}</td></tr>
      <tr><th>oldest</th><td>${secs(o.oldest_age_s)}</td></tr><tr><th>parked</th><td>${o.parked}</td></tr>
      <tr><th>published /s (last minute)</th><td>${o.publish_per_s}</td></tr>
      <tr class="${o.relays_alive ? "" : "flagged"}"><th>relays alive</th><td id="ops-relays-alive">${o.relays_alive}</td></tr>` +
      o.relays.map((r) => `<tr class="${r.state === "alive" ? "" : "flagged"}"><th>relay ${esc(r.relay)}</th>
        <td>${esc(r.state)}, last beat ${secs(r.beat_age_s)} ago, ${r.published} published</td></tr>`).join(""));
    if (document.getElementById("ops-scenarios")) {
      rows("ops-scenarios", (s.scenarios || []).map((r) => `<tr><td>${esc(r.title)}</td><td>${esc(r.staff)}</td>
        <td>${esc(r.started_at)}</td><td>${r.ended_at ? esc(r.ended_at) : "<strong>running</strong>"}</td><td>${esc(r.detail)}</td></tr>`).join(""));
    }
    rows("ops-statuses", Object.entries(s.orders.by_status).map(([st, n]) => `<tr><th>${esc(st)}</th><td data-status="${esc(st)}">${n}</td></tr>`).join(""));
    rows("ops-stuck", s.orders.stuck.map((r) =>
      `<tr><td>${link(r.url, r.order)}</td><td>${esc(r.status)}</td><td>${esc(r.waiting_on)}</td><td>${secs(r.idle_s)}</td></tr>`).join(""));
    rows("ops-reviews", s.orders.reviews.map((r) =>
      `<tr><td>${link(r.url, r.order)}</td><td>${r.score}</td><td>${esc(r.deadline)}</td><td>${secs(r.left_s)}</td></tr>`).join(""));
    rows("ops-dead-tasks", Object.entries(s.dead_letters_by_task).map(([task, n]) =>
      `<tr><th>${esc(task)}</th><td>${n}</td></tr>`).join(""));
    rows("ops-failures", s.orders.failures.map((f) =>
      `<tr><td>${link(f.url, f.task)}</td><td>${esc(f.queue)}</td><td>${link(f.order_url, f.order)}</td><td>${esc(f.status)}</td>
       <td>${esc(f.error)}</td><td>${secs(f.age_s)}</td></tr>`).join(""));
  }

  function render(s) {
    window.opsPage.last = s;
    $("ops-at").textContent = new Date(s.at).toLocaleTimeString();
    $("ops-broker").textContent = s.broker.source;
    $("ops-broker-error").textContent = s.broker.error ? " broker unreachable: " + s.broker.error : "";
    $("ops-flagged").textContent = s.flagged.length ? s.flagged.join(", ") : "none";
    $("ops-flagged").className = s.flagged.length ? "bad" : "";
    $("ops-dlq").textContent = num(s.broker.dead_letter_queue);
    $("ops-retries").textContent = s.broker.retries_waiting === null ? "not known" : s.broker.retries_waiting;
    renderMap(s);
    renderTables(s);
    for (const fn of hooks) fn(s);
  }

  let source = null;
  let pollTimer = null;
  function live(mode) {
    const pill = $("ops-live");
    pill.textContent = mode;
    pill.className = "pill " + (mode === "live" ? "ok" : "warn");
  }
  function poll() {
    fetch(script.dataset.poll, { headers: { Accept: "application/json" }, credentials: "same-origin" })
      .then((r) => (r.ok ? r.json() : Promise.reject(r.status)))
      .then((s) => { render(s); live("polling"); })
      .catch(() => live("offline"));
  }
  function startPolling() {
    if (pollTimer) return;
    poll();
    pollTimer = setInterval(poll, 1000);
    setTimeout(connect, 15000);
  }
  function connect() {
    if (source) source.close();
    source = new EventSource(script.dataset.stream);
    source.addEventListener("snapshot", (e) => {
      if (pollTimer) { clearInterval(pollTimer); pollTimer = null; }
      live("live");
      render(JSON.parse(e.data));
    });
    source.addEventListener("end", () => connect()); // the server bounds a stream's life: open the next one
    source.onerror = () => { source.close(); source = null; startPolling(); };
  }
  render(JSON.parse(document.getElementById("ops-initial").textContent));
  cy.layout(layout).run();
  window.addEventListener("resize", () => cy.fit(undefined, 10));
  connect();
})();
