// Backroom dashboard page: plain JS, no external requests.
// Model: a snapshot on connect, then coalesced deltas (latest value per key) from /ws.
// Rendering is batched: deltas mark parts dirty and one render pass runs per animation frame.
// All record text goes through textContent, never innerHTML: records come from the network.
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);

  const model = {
    states: new Map(),   // "store:sku" -> state
    obs: new Map(),      // "store:sku" -> latest shelf observation
    alerts: new Map(),   // alert_id -> alert
    cells: new Map(),    // "store\u0000category" -> heatmap cell
    now: null,           // newest event time (epoch seconds)
    seq: 0,
  };
  const ui = {
    store: null, category: "", sortKey: "risk", sortDir: -1, openAlert: null,
    dirty: { heat: true, table: true, alerts: true, header: true, evidence: false },
  };
  const SEV = { info: 0, low: 1, medium: 2, high: 3, critical: 4 };

  // ---- helpers --------------------------------------------------------------------------------
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    if (attrs) for (const [k, v] of Object.entries(attrs)) {
      if (v === undefined || v === null || v === false) continue;
      if (k === "class") node.className = v;
      else if (k === "text") node.textContent = v;
      else if (k.startsWith("data-") || k === "title" || k === "colspan") node.setAttribute(k, v);
      else node[k] = v;
    }
    for (const c of children) node.append(c);
    return node;
  }
  const tsSec = (iso) => { const t = Date.parse(iso); return Number.isFinite(t) ? t / 1000 : null; };
  function fmtAge(sec) {
    if (sec === null || !Number.isFinite(sec)) return "—";
    sec = Math.max(0, sec);
    if (sec < 60) return Math.round(sec) + "s";
    if (sec < 3600) return Math.floor(sec / 60) + "m";
    if (sec < 86400) return Math.floor(sec / 3600) + "h " + Math.floor((sec % 3600) / 60) + "m";
    return Math.floor(sec / 86400) + "d " + Math.floor((sec % 86400) / 3600) + "h";
  }
  const fmtNum = (v, d) => (v === undefined || v === null ? "—" : Number(v).toFixed(d));
  const fmtTime = (sec) => (sec === null ? "—" : new Date(sec * 1000).toISOString().slice(0, 16).replace("T", " ") + " UTC");
  function skuRisk(s) {
    const shelf = s.shelf_qty || 0, back = s.backroom_qty || 0;
    if (shelf <= 0 && back <= 0) return 1;
    if (shelf <= 0) return 0.8;
    if ((s.min_shelf_qty !== undefined && shelf <= s.min_shelf_qty) ||
        (s.hours_to_shelf_out !== undefined && s.hours_to_shelf_out <= 2)) return 0.6;
    if (s.hours_to_stockout !== undefined && s.hours_to_stockout <= (model.horizon || 48)) return 0.4;
    return 0;
  }
  function riskClass(r) { return r >= 0.9 ? "r3" : r >= 0.5 ? "r2" : r > 0.05 ? "r1" : "r0"; }
  function heatColour(v) {
    // 0 green -> 0.5 amber -> 1 red, as an HSL hue sweep.
    const hue = 130 - 130 * Math.min(1, Math.max(0, v));
    return `hsl(${hue}, 65%, ${v > 0.02 ? 42 : 36}%)`;
  }

  // ---- model updates --------------------------------------------------------------------------
  // States and cells arrive as {f: [field names], r: [[values]]} (smaller, cheaper to parse);
  // nulls are dropped so a missing value reads as undefined, as in the REST objects.
  function rows(block) {
    if (!block) return [];
    if (Array.isArray(block)) return block;
    const f = block.f;
    return block.r.map((row) => {
      const o = {};
      for (let i = 0; i < f.length; i++) if (row[i] !== null && row[i] !== undefined) o[f[i]] = row[i];
      return o;
    });
  }

  function apply(msg) {
    msg.states = rows(msg.states);
    msg.cells = rows(msg.cells);
    if (msg.type === "snapshot") {
      model.states.clear(); model.obs.clear(); model.alerts.clear(); model.cells.clear();
      model.horizon = msg.horizon_hours;
      model.budget = msg.alert_budget || null;
    } else if (msg.seq !== model.seq + 1 && model.seq !== 0) {
      // A gap means a lost delta: the page would be wrong, so ask for a fresh snapshot.
      send("resync");
    }
    model.seq = msg.seq;
    if (msg.now !== null && msg.now !== undefined) model.now = msg.now;
    for (const s of msg.states || []) model.states.set(s.store_id + ":" + s.sku, s);
    for (const o of msg.observations || []) model.obs.set(o.store_id + ":" + o.sku, o);
    for (const a of msg.alerts || []) model.alerts.set(a.alert_id, a);
    for (const c of msg.cells || []) model.cells.set(c.store_id + "\u0000" + c.category, c);
    // Bound the resolved tail kept in the page: open alerts always stay.
    if (model.alerts.size > 1500) {
      for (const [id, a] of model.alerts) {
        if (model.alerts.size <= 1200) break;
        if (a.status === "resolved") model.alerts.delete(id);
      }
    }
    const d = ui.dirty;
    d.header = true;
    if (msg.type === "snapshot" || (msg.cells && msg.cells.length)) d.heat = true;
    if (msg.type === "snapshot" || (msg.states || []).some((s) => s.store_id === ui.store) ||
        (msg.alerts || []).length) d.table = true;
    if (msg.type === "snapshot" || (msg.alerts || []).length) d.alerts = true;
    else d.alerts = d.alerts || !!model.now; // ages move with event time
    if (ui.openAlert && ((msg.alerts || []).some((a) => a.alert_id === ui.openAlert) || msg.type === "snapshot")) d.evidence = true;
    schedule();
  }

  let scheduled = false;
  function schedule() {
    if (scheduled) return;
    scheduled = true;
    const run = () => { scheduled = false; render(); };
    // requestAnimationFrame does not fire in hidden tabs: fall back to a timer there.
    if (document.hidden) setTimeout(run, 250); else requestAnimationFrame(run);
  }

  function render() {
    const d = ui.dirty;
    if (d.header) renderHeader();
    if (d.heat) renderHeatmap();
    if (d.table && ui.store) renderTable();
    if (d.alerts) renderAlerts();
    if (d.evidence) renderEvidence();
    ui.dirty = { heat: false, table: false, alerts: false, header: false, evidence: false };
  }

  // ---- header ---------------------------------------------------------------------------------
  function renderHeader() {
    $("event-time").textContent = fmtTime(model.now);
    let open = 0, crit = 0;
    for (const a of model.alerts.values()) if (a.status !== "resolved") { open++; if (a.severity === "critical") crit++; }
    const stores = new Set(); for (const s of model.states.values()) stores.add(s.store_id);
    $("counts").textContent = `${stores.size} stores · ${model.states.size} SKUs · ${open} open alerts (${crit} critical)`;
  }

  // ---- chain view: heatmap --------------------------------------------------------------------
  function renderHeatmap() {
    const metric = $("heat-metric").value;
    const stores = [...new Set([...model.cells.values()].map((c) => c.store_id))].sort();
    const cats = [...new Set([...model.cells.values()].map((c) => c.category))].sort();
    $("heat-empty").hidden = stores.length > 0;
    const thead = $("heatmap").tHead, tbody = $("heatmap").tBodies[0];
    const head = el("tr", null, el("th", { text: "store" }));
    for (const c of cats) head.append(el("th", { text: c, title: c }));
    head.append(el("th", { text: "alerts", class: "num" }));
    thead.replaceChildren(head);
    const rows = [];
    for (const st of stores) {
      const tr = el("tr", { "data-store": st });
      tr.append(el("th", { class: "store-link", text: st, title: "open store " + st }));
      let alerts = 0;
      for (const cat of cats) {
        const c = model.cells.get(st + "\u0000" + cat);
        if (!c) { tr.append(el("td", { class: "cell empty" })); continue; }
        alerts += c.open_alerts;
        const v = metric === "risk" ? c.risk : 1 - c.availability;
        const td = el("td", {
          class: "cell", "data-store": st, "data-category": cat,
          "data-risk": c.risk.toFixed(3), "data-availability": c.availability.toFixed(3),
          title: `${st} · ${cat}: ${Math.round(c.availability * 100)}% on shelf, risk ${c.risk.toFixed(2)}, ${c.skus} SKUs, ${c.open_alerts} open alerts`,
        });
        td.style.background = heatColour(v);
        td.append(el("span", { class: "pct", text: Math.round(c.availability * 100) + "%" }));
        if (c.open_alerts) td.append(el("span", { class: "badge sev-" + (c.max_severity || "info"), text: String(c.open_alerts) }));
        tr.append(td);
      }
      tr.append(el("td", { class: "num", text: String(alerts) }));
      if (st === ui.store) tr.classList.add("selected");
      rows.push(tr);
    }
    tbody.replaceChildren(...rows);
  }

  // ---- store view: SKU table ------------------------------------------------------------------
  function openAlertsFor(store, sku) {
    let n = 0;
    for (const a of model.alerts.values()) if (a.status !== "resolved" && a.store_id === store && a.sku === sku) n++;
    return n;
  }
  function renderTable() {
    const q = $("sku-filter").value.trim().toLowerCase();
    const cat = ui.category || "";
    const riskOnly = $("risk-only").checked;
    const all = [...model.states.values()].filter((s) => s.store_id === ui.store);
    // Category options follow the data.
    const cats = [...new Set(all.map((s) => s.category))].sort();
    const sel = $("cat-filter");
    if (sel.options.length - 1 !== cats.length) {
      sel.replaceChildren(el("option", { value: "", text: "all categories" }), ...cats.map((c) => el("option", { value: c, text: c })));
    }
    sel.value = cats.includes(cat) ? cat : "";
    const alertCount = new Map();
    for (const a of model.alerts.values()) if (a.status !== "resolved" && a.store_id === ui.store) alertCount.set(a.sku, (alertCount.get(a.sku) || 0) + 1);
    let rows = all.map((s) => ({ s, risk: skuRisk(s), alerts: alertCount.get(s.sku) || 0 }))
      .filter((r) => (!q || r.s.sku.toLowerCase().includes(q) || (r.s.category || "").toLowerCase().includes(q)) &&
        (!cat || r.s.category === cat) && (!riskOnly || r.risk > 0 || r.alerts > 0));
    const k = ui.sortKey, dir = ui.sortDir;
    const val = (r) => (k === "risk" ? r.risk : k === "alerts" ? r.alerts : r.s[k]);
    rows.sort((a, b) => {
      let va = val(a), vb = val(b);
      if (va === undefined || va === null) va = typeof vb === "string" ? "" : Infinity * -dir;
      if (vb === undefined || vb === null) vb = typeof va === "string" ? "" : Infinity * -dir;
      const c = typeof va === "string" ? va.localeCompare(vb) : va - vb;
      return c !== 0 ? c * dir : a.s.sku.localeCompare(b.s.sku);
    });
    $("sku-count").textContent = `${rows.length} of ${all.length} SKUs`;
    for (const th of $("sku-table").tHead.rows[0].cells) {
      th.classList.toggle("sorted", th.dataset.key === k);
      th.dataset.dir = th.dataset.key === k ? (dir > 0 ? "asc" : "desc") : "";
    }
    const body = rows.map(({ s, risk, alerts }) => {
      const tr = el("tr", { class: riskClass(risk), "data-sku": s.sku, "data-shelf": String(s.shelf_qty) });
      const cap = s.shelf_capacity || 1;
      const bar = el("span", { class: "bar" }); bar.style.width = Math.min(100, (100 * (s.shelf_qty || 0)) / cap) + "%";
      tr.append(
        el("td", { text: s.sku, title: s.catalog_missing ? "no catalog entry: defaults used" : "" }),
        el("td", { text: s.category || "" }),
        el("td", { class: "num shelf" }, el("span", { text: String(s.shelf_qty) }), bar),
        el("td", { class: "num", text: String(s.backroom_qty) }),
        el("td", { class: "num", text: String(s.shelf_capacity) }),
        el("td", { class: "num", text: s.vision_fill === undefined ? "—" : Math.round(s.vision_fill * 100) + "%" }),
        el("td", { class: "num", text: fmtNum(s.demand_per_hour, 2) }),
        el("td", { class: "num", text: fmtNum(s.hours_to_shelf_out, 1) }),
        el("td", { class: "num", text: fmtNum(s.hours_to_stockout, 1) }),
        el("td", { class: "num", text: alerts ? String(alerts) : "" }),
      );
      return tr;
    });
    $("sku-table").tBodies[0].replaceChildren(...body);
  }

  function showStore(store) {
    ui.store = store;
    $("chain-view").hidden = !!store;
    $("store-view").hidden = !store;
    $("crumb-store").textContent = store ? " › " + store : "";
    $("store-title").textContent = store ? "Store " + store : "";
    if (store) { $("sku-filter").value = ""; ui.category = ""; }
    const hash = store ? "#store=" + encodeURIComponent(store) : "#";
    if (location.hash !== hash) history.replaceState(null, "", hash === "#" ? location.pathname : hash);
    ui.dirty.table = ui.dirty.alerts = ui.dirty.heat = true;
    schedule();
  }

  // ---- alert feed -----------------------------------------------------------------------------
  function renderAlerts() {
    const type = $("alert-type").value;
    const showResolved = $("show-resolved").checked;
    let list = [...model.alerts.values()].filter((a) =>
      (showResolved || a.status !== "resolved") && (!type || a.type === type) && (!ui.store || a.store_id === ui.store));
    // Open alerts by what they cost if nobody acts (expected lost sales: value, else units),
    // then severity, then newest; resolved ones after them.
    list.sort((a, b) => (a.status === "resolved") - (b.status === "resolved") || cost(b) - cost(a) ||
      (SEV[b.severity] || 0) - (SEV[a.severity] || 0) || (tsSec(b.ts) || 0) - (tsSec(a.ts) || 0));
    // The alert budget: per store, the most costly `budget` open alerts stay in the feed, the
    // rest go to the "more" list.
    const more = [];
    if (model.budget) {
      const seen = new Map();
      list = list.filter((a) => {
        if (a.status === "resolved") return true;
        const n = (seen.get(a.store_id) || 0) + 1; seen.set(a.store_id, n);
        if (n <= model.budget) return true;
        more.push(a); return false;
      });
    }
    const total = list.length;
    list = list.slice(0, 200);
    $("alert-count").textContent = total ? `(${total}${more.length ? ` + ${more.length} more` : ""})` : "";
    $("alerts-empty").hidden = total > 0;
    $("alerts-more").hidden = more.length === 0;
    $("alerts-more-count").textContent = String(more.length);
    $("alerts-more-list").replaceChildren(...more.slice(0, 200).map(alertItem));
    $("alerts").replaceChildren(...list.map(alertItem));
  }

  function cost(a) {
    const lost = (a.evidence && a.evidence.expected_lost) || {};
    const v = lost.value !== null && lost.value !== undefined ? lost.value : lost.units;
    return typeof v === "number" && Number.isFinite(v) ? v : 0;
  }

  function lostText(a) {
    const lost = (a.evidence && a.evidence.expected_lost) || null;
    if (!lost || !lost.units) return "";
    return `≈ ${fmtNum(lost.units, 1)} units lost` + (lost.value ? ` (${fmtNum(lost.value, 2)} at cost)` : "");
  }

  function alertItem(a) {
    const age = model.now !== null ? model.now - (tsSec(a.opened_ts || a.ts) || model.now) : null;
    const li = el("li", {
      class: `alert sev-${a.severity} ${a.status}` + (a.acked ? " acked" : ""),
      "data-alert-id": a.alert_id, "data-type": a.type, "data-status": a.status, "data-sku": a.sku,
      "data-store": a.store_id, "data-false-alarm": a.false_alarm ? "1" : "0", tabIndex: 0, title: a.message || "",
    });
    li.append(
      el("div", { class: "row1" },
        el("span", { class: "sev", text: a.severity }),
        el("span", { class: "type", text: a.type }),
        el("span", { class: "where", text: `${a.store_id} · ${a.sku}` }),
        el("span", { class: "age", text: fmtAge(age), title: "age in event time since it opened" })),
      el("div", { class: "action", text: a.action || "" }),
      el("div", { class: "row2" },
        el("span", { class: "status", text: a.status + (a.acked ? " · acked" : "") + (a.resolved_by === "operator" ? " by operator" : "") + (a.false_alarm ? " · false alarm reported" : "") }),
        a.status === "resolved" ? "" : el("button", { class: "ack", text: a.acked ? "acked" : "ack", disabled: !!a.acked, "data-act": "ack" }),
        a.status === "resolved" ? "" : el("button", { class: "resolve", text: "resolve", "data-act": "resolve" }),
        a.status === "resolved" || a.false_alarm ? "" : el("button", { class: "false-alarm", text: "false alarm", title: "this alert was wrong: tell Backroom (tunes this SKU's threshold)", "data-act": "false-alarm" }),
        el("span", { class: "lost", text: lostText(a) })),
    );
    return li;
  }

  async function act(id, what) {
    const r = await fetch(`/api/alerts/${encodeURIComponent(id)}/${what}`, { method: "POST", credentials: "same-origin" });
    const body = await r.json().catch(() => ({}));
    if (!r.ok) { flash(body.detail || `${what} failed (${r.status})`); return; }
    model.alerts.set(body.alert_id, body); // the delta will confirm; show it at once
    ui.dirty.alerts = ui.dirty.table = ui.dirty.header = true;
    if (ui.openAlert === id) ui.dirty.evidence = true;
    schedule();
  }
  function flash(text) { $("ev-status").textContent = text; console.warn(text); }

  // ---- evidence -------------------------------------------------------------------------------
  function openEvidence(id) { ui.openAlert = id; $("evidence").hidden = false; ui.dirty.evidence = true; schedule(); }
  function closeEvidence() { ui.openAlert = null; $("evidence").hidden = true; }

  let frameToken = 0;
  function renderEvidence() {
    const a = model.alerts.get(ui.openAlert);
    if (!a) return;
    const ev = a.evidence || {};
    $("ev-title").textContent = `${a.type} · ${a.store_id} · ${a.sku}`;
    $("ev-message").textContent = a.message || "";
    $("ev-action").textContent = a.action || "";
    $("ev-status").textContent = `${a.status}${a.acked ? " · acknowledged" : ""} · severity ${a.severity} · opened ${a.opened_ts || a.ts}`;
    $("ev-ack").disabled = a.status === "resolved" || !!a.acked;
    $("ev-resolve").disabled = a.status === "resolved";
    const facts = Object.entries(ev).filter(([, v]) => v === null || typeof v !== "object");
    $("ev-facts").replaceChildren(...facts.map(([k, v]) => el("tr", null, el("th", { text: k }), el("td", { text: String(v) }))));
    // Camera: the alert's own observation, else the latest one seen for this SKU.
    const obs = ev.observation || model.obs.get(a.store_id + ":" + a.sku) || null;
    drawFrame(obs);
    drawForecast(ev.forecast, a);
  }

  // ---- camera frame and labelling ----------------------------------------------------------------
  // The frame is drawn with every box of that frame the page knows (this SKU's slot and the
  // other slots' observations of the same frame). A person can mark gap boxes wrong and draw
  // missed gaps; "Save labels" posts them to /api/labels, which keeps the frame as a YOLO
  // training example. Box coordinates are image pixels throughout; the canvas is scaled.
  const lab = { key: null, obs: null, img: null, scale: 1, w: 0, h: 0, boxes: [], wrong: new Set(), drawn: [], drag: null };
  const boxKey = (b) => (b.cls || "?") + ":" + b.box.join(",");
  function frameBoxes(obs) {
    const out = [], seen = new Set();
    const add = (list) => {
      for (const b of list || []) {
        if (!Array.isArray(b.box) || b.box.length !== 4 || seen.has(boxKey(b))) continue;
        seen.add(boxKey(b)); out.push(b);
      }
    };
    add(obs.boxes);
    for (const o of model.obs.values()) {
      if (o !== obs && o.frame_event_id === obs.frame_event_id && o.store_id === obs.store_id &&
          o.camera_id === obs.camera_id) add(o.boxes);
    }
    return out;
  }

  function drawFrame(obs) {
    const canvas = $("ev-frame");
    const none = $("ev-frame-none");
    const token = ++frameToken;
    if (!obs || !obs.frame_uri) {
      canvas.hidden = true; none.hidden = false; $("ev-frame-meta").textContent = "";
      $("ev-label").hidden = true; lab.key = null; lab.img = null; return;
    }
    const key = `${ui.openAlert}|${obs.frame_uri}|${obs.frame_event_id}`;
    if (key !== lab.key) {
      // Another frame: start its labels afresh (a redraw of the same frame keeps them).
      Object.assign(lab, { key, img: null, wrong: new Set(), drawn: [], drag: null });
      $("ev-label").dataset.saved = ""; $("ev-label-status").textContent = "";
    }
    lab.obs = obs;
    lab.boxes = frameBoxes(obs);
    $("ev-frame-meta").textContent = `${obs.camera_id || ""} · ${obs.facings_visible ?? "?"}/${obs.facings_expected ?? "?"} facings · fill ${fmtNum(obs.fill_ratio, 2)}`;
    if (lab.img) { paintFrame(); renderLabelList(); canvas.dataset.boxes = String(lab.boxes.length); return; }
    const img = new Image();
    img.onload = () => {
      if (token !== frameToken) return;
      lab.img = img; lab.w = img.naturalWidth; lab.h = img.naturalHeight;
      lab.scale = Math.min(480 / img.naturalWidth, 360 / img.naturalHeight, 1.5);
      canvas.width = Math.round(img.naturalWidth * lab.scale);
      canvas.height = Math.round(img.naturalHeight * lab.scale);
      paintFrame();
      canvas.hidden = false; none.hidden = true;
      canvas.dataset.boxes = String(lab.boxes.length);
      // Labels need the frame's event id: the server checks it still shows that frame.
      $("ev-label").hidden = !obs.frame_event_id;
      canvas.classList.toggle("labelling", !!obs.frame_event_id);
      renderLabelList();
    };
    img.onerror = () => {
      if (token !== frameToken) return;
      canvas.hidden = true; none.hidden = false; none.textContent = "Camera frame unavailable: " + obs.frame_uri;
      $("ev-label").hidden = true;
    };
    img.src = "/api/frame?uri=" + encodeURIComponent(obs.frame_uri);
  }

  function paintFrame() {
    const canvas = $("ev-frame"), s = lab.scale;
    const g = canvas.getContext("2d");
    g.setLineDash([]);
    g.drawImage(lab.img, 0, 0, canvas.width, canvas.height);
    g.lineWidth = 2; g.font = "11px sans-serif";
    const box = (b, colour, label, dashed) => {
      const [x0, y0, x1, y1] = b.map((v) => v * s);
      g.setLineDash(dashed ? [5, 4] : []);
      g.strokeStyle = colour; g.strokeRect(x0, y0, x1 - x0, y1 - y0);
      g.setLineDash([]);
      g.fillStyle = colour;
      g.fillRect(x0, Math.max(0, y0 - 13), g.measureText(label).width + 6, 13);
      g.fillStyle = "#000"; g.fillText(label, x0 + 3, Math.max(10, y0 - 3));
    };
    // Products under gaps, and a gap marked wrong on top, so a gap over a product still shows.
    const rank = (b) => (b.cls !== "gap" ? 0 : lab.wrong.has(boxKey(b)) ? 2 : 1);
    for (const b of [...lab.boxes].sort((a, b) => rank(a) - rank(b))) {
      const gap = b.cls === "gap", wrong = gap && lab.wrong.has(boxKey(b));
      const conf = b.conf !== undefined ? Number(b.conf).toFixed(2) : "";
      box(b.box, wrong ? "#8a98a6" : gap ? "#ff3b30" : "#34c759", wrong ? "wrong" : `${b.cls || "?"} ${conf}`, wrong);
    }
    for (const d of lab.drawn) box(d, "#ffd60a", "gap (drawn)", false);
    const dr = lab.drag;
    if (dr && dr.moved) box([Math.min(dr.x0, dr.x1), Math.min(dr.y0, dr.y1), Math.max(dr.x0, dr.x1), Math.max(dr.y0, dr.y1)], "#ffd60a", "gap", true);
  }

  function renderLabelList() {
    const items = [];
    let n = 0;
    for (const b of lab.boxes) {
      if (b.cls !== "gap") continue;
      const wrong = lab.wrong.has(boxKey(b));
      n++;
      const btn = el("button", {
        type: "button", class: "gap-box", "data-key": boxKey(b),
        text: `gap ${n}${b.conf !== undefined ? " · " + Number(b.conf).toFixed(2) : ""}: ${wrong ? "wrong" : "mark wrong"}`,
        title: "detector gap box at " + b.box.map((v) => Math.round(v)).join(", "),
      });
      btn.setAttribute("aria-pressed", String(wrong));
      items.push(el("li", null, btn));
    }
    lab.drawn.forEach((d, i) => items.push(el("li", null, el("button", {
      type: "button", class: "drawn", "data-drawn": String(i),
      text: `drawn gap ${i + 1}: remove`, title: "drawn at " + d.map((v) => Math.round(v)).join(", "),
    }))));
    const list = $("ev-label-boxes");
    list.replaceChildren(...items);
    list.dataset.wrong = String(lab.wrong.size);
    list.dataset.drawn = String(lab.drawn.length);
  }

  function labelsChanged() {
    paintFrame(); renderLabelList();
    const panel = $("ev-label");
    if (panel.dataset.saved) { panel.dataset.saved = ""; $("ev-label-status").textContent = "changed since saved"; }
  }
  function toggleWrong(key) {
    if (lab.wrong.has(key)) lab.wrong.delete(key); else lab.wrong.add(key);
    labelsChanged();
  }

  // Pointer position in image pixels, whatever size CSS gives the canvas.
  function imagePoint(e) {
    const c = $("ev-frame"), r = c.getBoundingClientRect();
    const x = ((e.clientX - r.left) * c.width) / r.width / lab.scale;
    const y = ((e.clientY - r.top) * c.height) / r.height / lab.scale;
    return [Math.min(lab.w, Math.max(0, x)), Math.min(lab.h, Math.max(0, y))];
  }
  const inside = (b, x, y) => x >= b[0] && x <= b[2] && y >= b[1] && y <= b[3];
  function onPointerDown(e) {
    if (!lab.img || $("ev-label").hidden || e.button !== 0) return;
    $("ev-frame").setPointerCapture(e.pointerId);
    const [x, y] = imagePoint(e);
    lab.drag = { x0: x, y0: y, x1: x, y1: y, moved: false };
  }
  function onPointerMove(e) {
    const dr = lab.drag; if (!dr) return;
    [dr.x1, dr.y1] = imagePoint(e);
    // A drag starts past 4 screen pixels: a click that wobbles is still a click.
    if (Math.max(Math.abs(dr.x1 - dr.x0), Math.abs(dr.y1 - dr.y0)) * lab.scale > 4) dr.moved = true;
    if (dr.moved) paintFrame();
  }
  function onPointerUp(e) {
    const dr = lab.drag; if (!dr) return;
    lab.drag = null;
    if (dr.moved) {
      [dr.x1, dr.y1] = imagePoint(e);
      const b = [Math.min(dr.x0, dr.x1), Math.min(dr.y0, dr.y1), Math.max(dr.x0, dr.x1), Math.max(dr.y0, dr.y1)].map((v) => Math.round(v * 10) / 10);
      if (b[2] - b[0] >= 2 && b[3] - b[1] >= 2 && lab.drawn.length < 50) lab.drawn.push(b);
      labelsChanged();
      return;
    }
    const [x, y] = [dr.x0, dr.y0];
    for (let i = lab.drawn.length - 1; i >= 0; i--) {
      if (inside(lab.drawn[i], x, y)) { lab.drawn.splice(i, 1); labelsChanged(); return; }
    }
    // The smallest gap box under the click: nested boxes stay reachable.
    const hits = lab.boxes.filter((b) => b.cls === "gap" && inside(b.box, x, y));
    hits.sort((a, b) => (a.box[2] - a.box[0]) * (a.box[3] - a.box[1]) - (b.box[2] - b.box[0]) * (b.box[3] - b.box[1]));
    if (hits.length) toggleWrong(boxKey(hits[0]));
  }

  async function saveLabels() {
    if (!lab.obs || !ui.openAlert) return;
    const panel = $("ev-label"), status = $("ev-label-status"), btn = $("ev-label-save");
    btn.disabled = true; status.textContent = "saving…";
    const body = {
      alert_id: ui.openAlert, frame_event_id: String(lab.obs.frame_event_id), units: "px",
      wrong: lab.boxes.filter((b) => b.cls === "gap" && lab.wrong.has(boxKey(b))).map((b) => b.box),
      drawn: lab.drawn,
    };
    try {
      const r = await fetch("/api/labels", {
        method: "POST", credentials: "same-origin",
        headers: { "content-type": "application/json" }, body: JSON.stringify(body),
      });
      const res = await r.json().catch(() => ({}));
      if (!r.ok) { panel.dataset.saved = "error"; status.textContent = res.detail || `saving labels failed (${r.status})`; return; }
      panel.dataset.saved = "true";
      panel.dataset.labelId = res.id;
      status.textContent = `saved: ${res.counts.product} product and ${res.counts.gap} gap boxes (training example ${res.id})`;
    } catch (e) {
      panel.dataset.saved = "error"; status.textContent = "saving labels failed: " + e;
    } finally {
      btn.disabled = false;
    }
  }

  // Accepts the shapes a forecaster may publish in evidence.forecast:
  //  {mean:[..], lower:[..], upper:[..], start?, step_hours?, actual?:[..]}
  //  {points:[{ts|t|h, mean|yhat|value, lower|lo, upper|hi}]} or that list itself.
  function forecastSeries(f) {
    if (!f) return null;
    const pts = Array.isArray(f) ? f : Array.isArray(f.points) ? f.points : null;
    const num = (v) => (typeof v === "number" && Number.isFinite(v) ? v : null);
    if (pts) {
      return pts.map((p, i) => ({
        x: num(p.h) ?? num(p.hour) ?? (p.ts || p.t ? (tsSec(p.ts || p.t) - (tsSec(pts[0].ts || pts[0].t) || 0)) / 3600 : i),
        y: num(p.mean) ?? num(p.yhat) ?? num(p.value) ?? num(p.forecast),
        lo: num(p.lower) ?? num(p.lo), hi: num(p.upper) ?? num(p.hi),
      })).filter((p) => p.y !== null);
    }
    const mean = f.mean || f.yhat || f.values;
    if (!Array.isArray(mean)) return null;
    const step = num(f.step_hours) ?? 1;
    const lo = f.lower || f.lo || [], hi = f.upper || f.hi || [];
    return mean.map((y, i) => ({ x: i * step, y: num(y), lo: num(lo[i]), hi: num(hi[i]) })).filter((p) => p.y !== null);
  }

  function drawForecast(f, a) {
    const svg = $("ev-forecast");
    const series = forecastSeries(f);
    const none = $("ev-forecast-none");
    if (!series || series.length < 2) { svg.replaceChildren(); svg.style.display = "none"; none.hidden = false; return; }
    svg.style.display = ""; none.hidden = true;
    const NS = "http://www.w3.org/2000/svg";
    const W = 480, H = 270, L = 40, R = 10, T = 12, B = 28;
    const xs = series.map((p) => p.x);
    const ys = series.flatMap((p) => [p.y, p.lo, p.hi]).filter((v) => v !== null);
    const x0 = Math.min(...xs), x1 = Math.max(...xs);
    const y1 = Math.max(...ys, 0.1) * 1.1, y0 = Math.min(0, ...ys);
    const sx = (x) => L + ((x - x0) / (x1 - x0 || 1)) * (W - L - R);
    const sy = (y) => H - B - ((y - y0) / (y1 - y0 || 1)) * (H - T - B);
    const node = (tag, attrs) => { const n = document.createElementNS(NS, tag); for (const [k, v] of Object.entries(attrs)) n.setAttribute(k, v); return n; };
    const parts = [];
    // Grid first, so the band and the line are drawn over it.
    for (let i = 0; i <= 4; i++) {
      const v = y0 + ((y1 - y0) * i) / 4;
      parts.push(node("line", { x1: L, x2: W - R, y1: sy(v), y2: sy(v), class: "grid" }));
      const t = node("text", { x: L - 4, y: sy(v) + 4, "text-anchor": "end", class: "axis" }); t.textContent = v.toFixed(1); parts.push(t);
    }
    const band = series.filter((p) => p.lo !== null && p.hi !== null);
    if (band.length > 1) {
      const d = band.map((p, i) => `${i ? "L" : "M"}${sx(p.x)},${sy(p.hi)}`).join("") +
        band.slice().reverse().map((p) => `L${sx(p.x)},${sy(p.lo)}`).join("") + "Z";
      parts.push(node("path", { d, class: "band" }));
    }
    parts.push(node("path", { d: series.map((p, i) => `${i ? "L" : "M"}${sx(p.x)},${sy(p.y)}`).join(""), class: "mean" }));
    const xl = node("text", { x: (L + W - R) / 2, y: H - 6, "text-anchor": "middle", class: "axis" });
    xl.textContent = `hours ahead (0–${Math.round(x1 - x0)})` + (a.evidence && a.evidence.hours_to_stockout ? ` · stockout in ${fmtNum(a.evidence.hours_to_stockout, 1)} h` : "");
    parts.push(xl);
    svg.replaceChildren(...parts);
    svg.dataset.points = String(series.length);
  }

  // ---- ask box --------------------------------------------------------------------------------
  async function ask(q) {
    const out = $("ask-answer");
    out.hidden = false; out.replaceChildren(el("p", { class: "muted", text: "thinking…" }));
    const params = new URLSearchParams({ q }); if (ui.store) params.set("store", ui.store);
    try {
      const r = await fetch("/api/ask?" + params, { credentials: "same-origin" });
      const body = await r.json().catch(() => ({}));
      if (!r.ok) { out.replaceChildren(el("p", { class: "err", text: body.detail || `ask failed (${r.status})` })); return; }
      const grid = (columns, rows) => {
        const table = el("table");
        if (columns && columns.length) {
          table.append(el("tr", null, ...columns.map((c) => el("th", { text: c }))));
          for (const row of (rows || []).slice(0, 50)) table.append(el("tr", null, ...row.map((v) => el("td", { text: v === null ? "" : String(v) }))));
        }
        return table;
      };
      const close = el("button", { type: "button", class: "close", text: "×", onclick: () => { out.hidden = true; } });
      if (body.parts && body.parts.length) {
        // A several-part answer (the restock plan): one titled table per part.
        const sections = body.parts.map((p) => el("section", { class: "ask-part", "data-part": p.name },
          el("h4", { text: `${p.title} (${(p.rows || []).length})` }), grid(p.columns, p.rows)));
        out.replaceChildren(close, ...sections);
      } else {
        out.replaceChildren(close, el("p", { text: body.text || "" }), grid(body.columns, body.rows));
      }
    } catch (e) {
      out.replaceChildren(el("p", { class: "err", text: "ask failed: " + e }));
    }
  }

  // ---- websocket with reconnect ---------------------------------------------------------------
  let ws = null, backoff = 500;
  function send(text) { if (ws && ws.readyState === 1) ws.send(text); }
  function setConn(state, text) { const c = $("conn"); c.dataset.state = state; c.textContent = text; }
  function connect() {
    setConn("connecting", "connecting…");
    ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws");
    ws.onopen = () => { backoff = 500; };
    ws.onmessage = (ev) => {
      let msg; try { msg = JSON.parse(ev.data); } catch { return; }
      if (msg.type === "snapshot") setConn("live", "live");
      apply(msg);
    };
    ws.onclose = () => {
      setConn("reconnecting", "reconnecting…");
      model.seq = 0;
      setTimeout(connect, backoff);
      backoff = Math.min(backoff * 2, 5000);
    };
    ws.onerror = () => { /* onclose follows and retries */ };
  }

  // ---- events ---------------------------------------------------------------------------------
  $("heatmap").addEventListener("click", (e) => {
    const target = e.target.closest("[data-store]");
    if (!target) return;
    showStore(target.dataset.store);
    if (target.dataset.category) { ui.category = target.dataset.category; ui.dirty.table = true; schedule(); }
  });
  $("crumb-chain").addEventListener("click", (e) => { e.preventDefault(); showStore(null); });
  $("heat-metric").addEventListener("change", () => { ui.dirty.heat = true; schedule(); });
  for (const id of ["sku-filter", "cat-filter", "risk-only"]) $(id).addEventListener("input", () => { ui.category = $("cat-filter").value; ui.dirty.table = true; schedule(); });
  for (const id of ["alert-type", "show-resolved"]) $(id).addEventListener("input", () => { ui.dirty.alerts = true; schedule(); });
  $("sku-table").tHead.addEventListener("click", (e) => {
    const th = e.target.closest("th[data-key]"); if (!th) return;
    const key = th.dataset.key;
    if (ui.sortKey === key) ui.sortDir = -ui.sortDir; else { ui.sortKey = key; ui.sortDir = key === "sku" || key === "category" ? 1 : -1; }
    ui.dirty.table = true; schedule();
  });
  for (const id of ["alerts", "alerts-more-list"]) {
    $(id).addEventListener("click", (e) => {
      const li = e.target.closest("li[data-alert-id]"); if (!li) return;
      const btn = e.target.closest("button[data-act]");
      if (btn) { e.stopPropagation(); act(li.dataset.alertId, btn.dataset.act); return; }
      openEvidence(li.dataset.alertId);
    });
    $(id).addEventListener("keydown", (e) => {
      const li = e.target.closest("li[data-alert-id]"); if (li && e.key === "Enter") openEvidence(li.dataset.alertId);
    });
  }
  $("ev-close").addEventListener("click", closeEvidence);
  $("evidence").addEventListener("click", (e) => { if (e.target.id === "evidence") closeEvidence(); });
  document.addEventListener("keydown", (e) => { if (e.key === "Escape") closeEvidence(); });
  $("ev-ack").addEventListener("click", () => ui.openAlert && act(ui.openAlert, "ack"));
  $("ev-resolve").addEventListener("click", () => ui.openAlert && act(ui.openAlert, "resolve"));
  $("ev-frame").addEventListener("pointerdown", onPointerDown);
  $("ev-frame").addEventListener("pointermove", onPointerMove);
  $("ev-frame").addEventListener("pointerup", onPointerUp);
  $("ev-frame").addEventListener("pointercancel", () => { lab.drag = null; if (lab.img) paintFrame(); });
  $("ev-label-boxes").addEventListener("click", (e) => {
    const b = e.target.closest("button"); if (!b) return;
    if (b.dataset.key) toggleWrong(b.dataset.key);
    else if (b.dataset.drawn !== undefined) { lab.drawn.splice(Number(b.dataset.drawn), 1); labelsChanged(); }
  });
  $("ev-label-save").addEventListener("click", saveLabels);
  $("ask").addEventListener("submit", (e) => { e.preventDefault(); const q = $("ask-q").value.trim(); if (q) ask(q); });
  document.addEventListener("visibilitychange", () => { if (!document.hidden) { ui.dirty = { heat: true, table: true, alerts: true, header: true, evidence: !!ui.openAlert }; schedule(); } });

  const m = /^#store=(.+)$/.exec(location.hash);
  if (m) showStore(decodeURIComponent(m[1]));
  connect();
  window.backroom = { model, ui }; // for tests and the curious
})();
