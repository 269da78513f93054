/* qkdnet O&M console: plain JS, no build step, no external resources.
   Data: /api/topology and /basemap.geojson (Natural Earth, shipped with the package) once,
   /api/events (SSE) live, /api/history/{link} on selection, /api/availability,
   /api/alarms (the history) and /api/satellite every few seconds.
   The map zooms and pans (wheel, drag, + - 0 and the arrow keys, the buttons); labels are
   laid out at each view so that none overlaps another. Actions: POST /api/alarms/{id}/ack,
   /api/links/{id}/cut|repair and /api/nodes/{id}/stop|start (live network only). */
"use strict";
(function () {
  const SVG = "http://www.w3.org/2000/svg";
  const AVAIL_EVERY_MS = 5000, CHART_EVERY_MS = 5000, SAT_EVERY_MS = 3000,
    HISTORY_EVERY_MS = 5000;
  const ZOOM_MIN = 0.5, ZOOM_MAX = 64, KEY_ZOOM = 1.5, KEY_PAN_PX = 80, HISTORY_SHOWN = 200;
  // the zoom from which each kind's names are shown (when they fit: no label overlaps another)
  const LABEL_FROM = { om_centre: 1, ground_station: 1, backbone_access: 1, bsbn: 2,
    metro_access: 3, backbone_relay: 4, user: 10 };
  const LABEL_RANK = { om_centre: 0, backbone_access: 1, ground_station: 2, bsbn: 3,
    metro_access: 4, backbone_relay: 5, user: 6 };
  // sequential, light enough to read on the dark map at every stop, and free of red (down)
  const RAMP = ["#7b6ef6", "#3f9be8", "#22c3b5", "#7fd34e", "#fde725"];
  const KIND_R = { backbone_access: 6, backbone_relay: 4, bsbn: 4.5, metro_access: 5,
    user: 2.5, ground_station: 7, om_centre: 7 };
  const KIND_NAME = { backbone_access: "backbone access", backbone_relay: "backbone relay",
    bsbn: "BSBN", metro_access: "metro access", user: "user", ground_station: "ground station",
    om_centre: "O&M centre" };

  const $ = (id) => document.getElementById(id);
  const map = $("map");
  const topo = { nodes: [], links: [], node: {}, link: {}, linksOf: {}, sats: [], sat: {} };
  const el = { line: {}, hit: {}, circle: {}, label: {}, mark: {}, satLink: {}, over: {} };
  let state = { t: null, links: {}, nodes_down: [], alarms: [] };
  let scale = { lo: 0, hi: 1 };  // log10 SKR range of the colour ramp
  // The ramp spans one layer's links: backbone links make kbit/s, metro CV links Mbit/s,
  // and one scale over both would paint every backbone link alike.
  let scaleLayer = "all";
  let faultsAllowed = false;     // the server has a live network to inject faults into
  const LAYER_NAME = { all: "all layers", backbone: "backbone", bsbn: "BSBN", metro: "metro",
    user: "user access", other: "ground stations, O&M" };
  let selected = null;           // {type: "link"|"node", id}
  let chartLink = null;
  let lastDown = "";             // the links down at the last state event
  let lastAlarms = "";           // the active alarms at the last state event
  const expanded = new Set();    // root alarms whose related alarms are shown
  let proj = null;               // the map's lon/lat -> screen x/y (fit, then zoom and pan)
  let base = null;               // lon/lat -> x/y of the whole network fitted, set by project()
  let view = { k: 1, tx: 0, ty: 0 };  // zoom and pan over the fitted map
  let geo = null;                // the basemap (GeoJSON) once loaded
  let labelOrder = [];           // nodes in the order their labels are placed
  const onTop = new Set();       // links drawn over the nodes: down or selected
  let sky = null;                // the latest /api/satellite answer

  function svg(tag, attrs, parent) {
    const e = document.createElementNS(SVG, tag);
    for (const k in attrs) e.setAttribute(k, attrs[k]);
    if (parent) parent.appendChild(e);
    return e;
  }
  function html(tag, attrs, text, parent) {
    const e = document.createElement(tag);
    for (const k in attrs || {}) e.setAttribute(k, attrs[k]);
    if (text !== undefined && text !== null) e.textContent = text;
    if (parent) parent.appendChild(e);
    return e;
  }
  function fmtRate(bps) {
    if (bps === null || bps === undefined) return "–";
    const u = [[1e9, "Gbit/s"], [1e6, "Mbit/s"], [1e3, "kbit/s"]];
    for (const [f, n] of u) if (bps >= f) return (bps / f).toPrecision(3) + " " + n;
    return bps.toPrecision(3) + " bit/s";
  }
  const SIMULATED_BEFORE_S = 1e9;  // a twin run's clock counts from 0, a live one from 1970
  function fmtTime(t) {
    if (t === null || t === undefined) return "–";
    if (t < SIMULATED_BEFORE_S) {  // simulated time: day of the run and time of day
      const day = Math.floor(t / 86400), s = Math.floor(t - 86400 * day);
      const two = (v) => String(v).padStart(2, "0");
      return "day " + (day + 1) + " " + two(Math.floor(s / 3600)) + ":" +
        two(Math.floor((s % 3600) / 60)) + ":" + two(s % 60);
    }
    const d = new Date(t * 1000);
    return d.toLocaleTimeString([], { hour12: false });
  }
  /* The clock: a live network's date and time of day in the page's time zone, named; a
     twin run's simulated day and time. */
  function showClock(t) {
    if (document.body.classList.contains("replay")) return;  // replay.js shows its clock
    const zone = $("clock-zone");
    if (t === null || t === undefined || t < SIMULATED_BEFORE_S) {
      $("clock").textContent = fmtTime(t);
      zone.textContent = t === null || t === undefined ? "" : "simulated time";
      return;
    }
    const d = new Date(t * 1000), two = (v) => String(v).padStart(2, "0");
    $("clock").textContent = d.getFullYear() + "-" + two(d.getMonth() + 1) + "-" +
      two(d.getDate()) + " " + d.toLocaleTimeString([], { hour12: false });
    const off = -d.getTimezoneOffset(), sign = off < 0 ? "−" : "+";
    let name = "";
    try { name = Intl.DateTimeFormat().resolvedOptions().timeZone || ""; } catch (e) { /* */ }
    zone.textContent = (name ? name + " " : "") + "UTC" + sign +
      two(Math.floor(Math.abs(off) / 60)) + ":" + two(Math.abs(off) % 60);
  }
  function fmtPct(x) { return x === null || x === undefined ? "–" : (100 * x).toFixed(3) + " %"; }

  /* ---------- colour scale ---------- */
  function hexRgb(h) { return [1, 3, 5].map((i) => parseInt(h.slice(i, i + 2), 16)); }
  function ramp(f) {
    f = Math.min(1, Math.max(0, f)) * (RAMP.length - 1);
    const i = Math.min(RAMP.length - 2, Math.floor(f)), r = f - i;
    const a = hexRgb(RAMP[i]), b = hexRgb(RAMP[i + 1]);
    return "rgb(" + a.map((v, k) => Math.round(v + (b[k] - v) * r)).join(",") + ")";
  }
  function colourOf(skr) {
    if (!(skr > 0)) return null;
    const span = scale.hi - scale.lo;
    return ramp(span > 0 ? (Math.log10(skr) - scale.lo) / span : 1);
  }
  function updateScale() {
    const logs = [];
    for (const id in state.links) {
      const l = state.links[id], k = topo.link[id];
      if (l.up && l.skr_bps > 0 && k && (scaleLayer === "all" || k.kind === scaleLayer))
        logs.push(Math.log10(l.skr_bps));
    }
    if (!logs.length) return false;
    // 5th to 95th percentile, to half decades: a few outliers do not squeeze the rest into
    // one colour, and a steady network keeps a steady scale
    logs.sort((p, q) => p - q);
    const at = (f) => logs[Math.min(logs.length - 1, Math.floor(f * logs.length))];
    let lo = Math.floor(2 * at(0.05)) / 2, hi = Math.ceil(2 * at(0.95)) / 2;
    if (hi <= lo) hi = lo + 0.5;
    const changed = lo !== scale.lo || hi !== scale.hi;
    scale = { lo, hi };
    return changed;
  }

  /* ---------- map ---------- */
  function project() {
    const w = map.clientWidth || 800, h = map.clientHeight || 600, pad = 28;
    const ns = topo.nodes;
    if (!ns.length) return;
    const lat0 = ns.reduce((s, n) => s + n.lat, 0) / ns.length;
    const k = Math.cos((lat0 * Math.PI) / 180);
    const xs = ns.map((n) => n.lon * k), ys = ns.map((n) => -n.lat);
    const x0 = Math.min(...xs), x1 = Math.max(...xs), y0 = Math.min(...ys), y1 = Math.max(...ys);
    const sx = x1 > x0 ? (w - 2 * pad) / (x1 - x0) : Infinity;
    const sy = y1 > y0 ? (h - 2 * pad) / (y1 - y0) : Infinity;
    let s = Math.min(sx, sy);
    if (!isFinite(s)) s = 1;
    const ox = (w - (x1 - x0) * s) / 2, oy = (h - (y1 - y0) * s) / 2;
    map.setAttribute("viewBox", "0 0 " + w + " " + h);
    base = (lat, lon) => [ox + (lon * k - x0) * s, oy + (-lat - y0) * s];
    proj = (lat, lon) => {
      const [x, y] = base(lat, lon);
      return [view.tx + view.k * x, view.ty + view.k * y];
    };
    for (const n of ns) [n.bx, n.by] = base(n.lat, n.lon);
    drawGeo();
    place();
  }

  /* Everything at the current zoom and pan: the basemap by one transform (its strokes do
     not scale), nodes and links moved (their sizes do not scale), the labels laid out. */
  function place() {
    if (!base) return;
    $("geo").setAttribute("transform", "translate(" + view.tx.toFixed(1) + "," +
      view.ty.toFixed(1) + ") scale(" + view.k.toFixed(4) + ")");
    for (const n of topo.nodes) {
      n.x = view.tx + view.k * n.bx; n.y = view.ty + view.k * n.by;
      const c = el.circle[n.id], x = n.x.toFixed(1), y = n.y.toFixed(1);
      c.setAttribute("cx", x); c.setAttribute("cy", y);
      if (el.mark[n.id]) el.mark[n.id].setAttribute("transform", "translate(" + x + "," + y + ")");
    }
    for (const l of topo.links) {
      const a = topo.node[l.a], b = topo.node[l.b];
      for (const e of [el.hit[l.id], el.line[l.id]]) {
        e.setAttribute("x1", a.x.toFixed(1)); e.setAttribute("y1", a.y.toFixed(1));
        e.setAttribute("x2", b.x.toFixed(1)); e.setAttribute("y2", b.y.toFixed(1));
      }
    }
    for (const k of topo.sats) el.satLink[k.id].setAttribute("d", arc(topo.node[k.a], topo.node[k.b]));
    raiseLinks();
    layoutLabels();
    drawSky();
    map.setAttribute("data-zoom", view.k.toFixed(3));
  }

  let placing = false;
  function schedule() {  // one place() a frame however many wheel events come in
    if (placing) return;
    placing = true;
    requestAnimationFrame(() => { placing = false; place(); });
  }

  /* A satellite KM-link: a gentle arc bowing north (east for a north-south pair), as in
     `qkdnet topology map`, so that it does not hide the fibre under it. */
  function arc(a, b) {
    if (a.x > b.x || (a.x === b.x && a.y < b.y)) [a, b] = [b, a];
    const dx = b.x - a.x, dy = b.y - a.y;
    const cx = (a.x + b.x) / 2 + 0.15 * dy, cy = (a.y + b.y) / 2 - 0.15 * dx;
    return "M" + a.x.toFixed(1) + "," + a.y.toFixed(1) + "Q" + cx.toFixed(1) + "," +
      cy.toFixed(1) + " " + b.x.toFixed(1) + "," + b.y.toFixed(1);
  }

  /* ---------- the basemap ---------- */
  function ringsOf(g) {
    if (g.type === "MultiPolygon") return g.coordinates.flat();
    if (g.type === "Polygon" || g.type === "MultiLineString") return g.coordinates;
    return [g.coordinates];
  }
  function drawGeo() {
    const g = $("geo");
    g.textContent = "";
    if (!geo || !base) return;
    const d = { land: "", home: "", province: "", border: "", coast: "" };
    for (const f of geo.features) {
      const layer = f.properties.layer;
      const key = layer === "land" && f.properties.name === "China" ? "home" : layer;
      if (!(key in d)) continue;
      const close = layer === "land";
      for (const ring of ringsOf(f.geometry)) {
        let part = "";
        for (const [lon, lat] of ring) {
          const [x, y] = base(lat, lon);
          part += (part ? "L" : "M") + x.toFixed(1) + "," + y.toFixed(1);
        }
        d[key] += part + (close ? "Z" : "");
      }
    }
    for (const key of ["land", "home", "province", "border", "coast"])
      if (d[key]) svg("path", { class: "geo-" + key, d: d[key], "data-geo": key }, g);
  }

  /* ---------- labels ---------- */
  /* Names by zoom, most important first (O&M centre, ground stations, backbone access
     nodes, ...), each only where it overlaps no label already placed. */
  function layoutLabels() {
    const w = map.clientWidth || 800, h = map.clientHeight || 600;
    const CELL = 64, grid = new Map();
    const boxes = (x0, y0, x1, y1, add) => {
      for (let i = Math.floor(x0 / CELL); i <= Math.floor(x1 / CELL); i++)
        for (let j = Math.floor(y0 / CELL); j <= Math.floor(y1 / CELL); j++) {
          const key = i + ":" + j, list = grid.get(key);
          if (add) { if (list) list.push([x0, y0, x1, y1]); else grid.set(key, [[x0, y0, x1, y1]]); }
          else if (list && list.some((b) => b[0] < x1 && x0 < b[2] && b[1] < y1 && y0 < b[3]))
            return true;
        }
      return false;
    };
    const few = topo.nodes.length <= 30;
    // the markers of the main nodes are obstacles too: a name never covers a city
    for (const n of topo.nodes) {
      if (!((LABEL_RANK[n.kind] ?? 9) <= 3) || n.x < 0 || n.x > w || n.y < 0 || n.y > h) continue;
      const r = (KIND_R[n.kind] || 4) + 1;
      boxes(n.x - r, n.y - r, n.x + r, n.y + r, true);
    }
    const order = selected && selected.type === "node"
      ? [topo.node[selected.id], ...labelOrder] : labelOrder;
    const shown = new Set();
    for (const n of order) {
      if (shown.has(n.id)) continue;
      const pick = selected && selected.type === "node" && selected.id === n.id;
      const inView = n.x >= 0 && n.x <= w && n.y >= 0 && n.y <= h;
      if (!inView || (!few && !pick && view.k < (LABEL_FROM[n.kind] || 99))) continue;
      const tw = textWidth(n.name), th = 13, r = KIND_R[n.kind] || 4;
      // right of the marker, else left of it
      let x0 = n.x + r + 3, anchor = "start";
      if (x0 + tw > w || boxes(x0, n.y - th / 2, x0 + tw, n.y + th / 2, false)) {
        x0 = n.x - r - 3 - tw; anchor = "end";
        if (x0 < 0 || boxes(x0, n.y - th / 2, x0 + tw, n.y + th / 2, false)) continue;
      }
      boxes(x0, n.y - th / 2, x0 + tw, n.y + th / 2, true);
      shown.add(n.id);
      let t = el.label[n.id];
      if (!t) {
        t = el.label[n.id] = svg("text", { "data-label": n.id }, $("labels"));
        t.textContent = n.name;
      }
      t.setAttribute("x", (anchor === "start" ? x0 : x0 + tw).toFixed(1));
      t.setAttribute("y", (n.y + 4).toFixed(1));
      t.setAttribute("text-anchor", anchor);
      t.removeAttribute("display");
    }
    for (const id in el.label) if (!shown.has(id)) el.label[id].setAttribute("display", "none");
  }

  const widths = {};
  let measure = null;
  function textWidth(text) {  // px at the labels' font, measured once per name
    if (widths[text] === undefined) {
      if (!measure) {
        measure = document.createElement("canvas").getContext("2d");
        const probe = svg("text", {}, $("labels"));
        measure.font = getComputedStyle(probe).font || "11px sans-serif";
        probe.remove();
      }
      widths[text] = measure.measureText(text).width + 2;
    }
    return widths[text];
  }

  /* ---------- zoom and pan ---------- */
  function zoomAt(f, px, py) {
    const k = Math.min(ZOOM_MAX, Math.max(ZOOM_MIN, view.k * f));
    f = k / view.k;
    view = { k, tx: px - (px - view.tx) * f, ty: py - (py - view.ty) * f };
    schedule();
  }
  function panBy(dx, dy) { view = { k: view.k, tx: view.tx + dx, ty: view.ty + dy }; schedule(); }
  function resetView() { view = { k: 1, tx: 0, ty: 0 }; schedule(); }
  function centreOn(bx, by, k) {  // a point of the fitted map to the middle, at zoom k
    const w = map.clientWidth || 800, h = map.clientHeight || 600;
    k = Math.min(ZOOM_MAX, Math.max(view.k, k));
    view = { k, tx: w / 2 - k * bx, ty: h / 2 - k * by };
    schedule();
  }
  function centreOnSelection(type, id) {
    if (type === "node") { const n = topo.node[id]; centreOn(n.bx, n.by, 4); return; }
    const l = type === "link" ? topo.link[id] : topo.sat[id];
    const a = topo.node[l.a], b = topo.node[l.b];
    const w = map.clientWidth || 800, h = map.clientHeight || 600;
    const span = Math.max(Math.abs(a.bx - b.bx) / w, Math.abs(a.by - b.by) / h, 1e-6);
    centreOn((a.bx + b.bx) / 2, (a.by + b.by) / 2, Math.min(8, 0.6 / span));
  }

  function wireZoom() {
    map.addEventListener("wheel", (ev) => {
      ev.preventDefault();
      const r = map.getBoundingClientRect();
      zoomAt(Math.exp(-ev.deltaY * 0.0015), ev.clientX - r.left, ev.clientY - r.top);
    }, { passive: false });
    // drag to pan; a drag ends without the click that would select what is under it
    let drag = null, dragged = false;
    map.addEventListener("pointerdown", (ev) => {
      if (ev.button !== 0) return;
      drag = { x: ev.clientX, y: ev.clientY, id: ev.pointerId, moving: false };
      dragged = false;
    });
    map.addEventListener("pointermove", (ev) => {
      if (!drag || ev.pointerId !== drag.id) return;
      const dx = ev.clientX - drag.x, dy = ev.clientY - drag.y;
      if (!drag.moving && Math.hypot(dx, dy) < 4) return;
      if (!drag.moving) { drag.moving = true; map.setPointerCapture(ev.pointerId); map.classList.add("panning"); }
      drag.x = ev.clientX; drag.y = ev.clientY;
      panBy(dx, dy);
    });
    const end = () => {
      if (drag && drag.moving) { dragged = true; map.classList.remove("panning"); }
      drag = null;
    };
    map.addEventListener("pointerup", end);
    map.addEventListener("pointercancel", end);
    map.addEventListener("click", (ev) => {
      if (dragged) { ev.stopPropagation(); dragged = false; }
    }, true);
    document.addEventListener("keydown", (ev) => {
      const t = ev.target;
      if (ev.ctrlKey || ev.metaKey || ev.altKey) return;
      if (t && (t.tagName === "INPUT" || t.tagName === "SELECT" || t.tagName === "TEXTAREA")) return;
      const w = map.clientWidth || 800, h = map.clientHeight || 600;
      const moves = { ArrowLeft: [KEY_PAN_PX, 0], ArrowRight: [-KEY_PAN_PX, 0],
        ArrowUp: [0, KEY_PAN_PX], ArrowDown: [0, -KEY_PAN_PX] };
      if (ev.key === "+" || ev.key === "=") zoomAt(KEY_ZOOM, w / 2, h / 2);
      else if (ev.key === "-" || ev.key === "_") zoomAt(1 / KEY_ZOOM, w / 2, h / 2);
      else if (ev.key === "0") resetView();
      else if (ev.key === "/") $("search").focus();
      else if (moves[ev.key]) panBy(...moves[ev.key]);
      else return;
      ev.preventDefault();
    });
    $("zoom-in").addEventListener("click", () =>
      zoomAt(KEY_ZOOM, (map.clientWidth || 800) / 2, (map.clientHeight || 600) / 2));
    $("zoom-out").addEventListener("click", () =>
      zoomAt(1 / KEY_ZOOM, (map.clientWidth || 800) / 2, (map.clientHeight || 600) / 2));
    $("zoom-reset").addEventListener("click", resetView);
  }

  /* ---------- search ---------- */
  function matches(q) {
    q = q.trim().toLowerCase();
    if (!q) return [];
    const found = [];
    const score = (text) => { const i = text.toLowerCase().indexOf(q); return i < 0 ? -1 : i === 0 ? 0 : 1; };
    for (const n of topo.nodes) {
      const s = Math.max(score(n.name), score(n.id));
      if (s >= 0) found.push({ type: "node", id: n.id, text: n.name, note: KIND_NAME[n.kind] || n.kind,
        rank: (score(n.name) === 0 ? 0 : 1) * 10 + (LABEL_RANK[n.kind] ?? 9) });
    }
    for (const l of topo.links) {
      const text = topo.node[l.a].name + " – " + topo.node[l.b].name;
      if (score(l.id) >= 0 || score(text) >= 0)
        found.push({ type: "link", id: l.id, text, note: l.kind + " link", rank: 20 });
    }
    for (const k of topo.sats) {
      const text = topo.node[k.a].name + " – " + topo.node[k.b].name;
      if (score(k.id) >= 0 || score(text) >= 0)
        found.push({ type: "sat", id: k.id, text, note: "satellite KM-link", rank: 15 });
    }
    found.sort((p, r) => p.rank - r.rank || p.text.localeCompare(r.text));
    return found.slice(0, 12);
  }
  function wireSearch() {
    const box = $("search"), ul = $("search-results");
    let shown = [];
    const pick = (m) => {
      ul.hidden = true;
      box.value = m.text;
      select(m.type, m.id);
      centreOnSelection(m.type, m.id);
    };
    box.addEventListener("input", () => {
      shown = matches(box.value);
      ul.textContent = "";
      for (const m of shown) {
        const li = html("li", { role: "option", "data-result-type": m.type, "data-result-id": m.id },
          null, ul);
        html("b", {}, m.text, li);
        html("span", { class: "muted" }, " " + m.note, li);
        li.addEventListener("mousedown", (ev) => { ev.preventDefault(); pick(m); });
      }
      if (box.value.trim() && !shown.length) html("li", { class: "none" }, "nothing found", ul);
      ul.hidden = !box.value.trim();
    });
    box.addEventListener("keydown", (ev) => {
      if (ev.key === "Enter" && shown.length) { ev.preventDefault(); pick(shown[0]); }
      else if (ev.key === "Escape") { box.value = ""; ul.hidden = true; box.blur(); }
    });
    box.addEventListener("blur", () => { ul.hidden = true; });
  }

  function buildMap(data) {
    topo.nodes = data.nodes; topo.links = data.links;
    $("scenario").textContent = data.name || "";
    for (const n of data.nodes) { topo.node[n.id] = n; topo.linksOf[n.id] = []; }
    const gl = $("links"), gn = $("nodes");
    // users and metro first so that backbone links are drawn on top
    const order = { user: 0, metro: 1, other: 2, bsbn: 3, backbone: 4 };
    const links = data.links.slice().sort((p, q) => order[p.kind] - order[q.kind]);
    for (const l of links) {
      topo.link[l.id] = l;
      topo.linksOf[l.a].push(l.id); topo.linksOf[l.b].push(l.id);
      const g = svg("g", {}, gl);
      // the wide transparent hit line lies under the visible one: both take clicks
      const hit = svg("line", { class: "hit", "data-hit": l.id }, g);
      const line = svg("line", { class: "link nodata", "data-link": l.id, "data-kind": l.kind,
        "data-up": "1" }, g);
      svg("title", {}, line).textContent = l.id;
      for (const e of [hit, line]) e.addEventListener("click", () => select("link", l.id));
      el.hit[l.id] = hit; el.line[l.id] = line;
    }
    // satellite KM-links: dashed arcs between ground stations, over the fibre
    topo.sats = data.satellite_links || [];
    for (const k of topo.sats) {
      topo.sat[k.id] = k;
      const p = svg("path", { class: "sat-link", "data-sat-link": k.id }, $("sat-links"));
      svg("title", {}, p).textContent = "satellite KM-link " + k.id;
      p.addEventListener("click", () => select("sat", k.id));
      el.satLink[k.id] = p;
    }
    const nodes = data.nodes.slice().sort((p, q) => (KIND_R[p.kind] || 4) - (KIND_R[q.kind] || 4));
    for (const n of nodes) {
      const c = svg("circle", { r: KIND_R[n.kind] || 4, class: "k-" + n.kind, "data-node": n.id,
        "data-kind": n.kind }, gn);
      svg("title", {}, c).textContent = n.name + " (" + (KIND_NAME[n.kind] || n.kind) + ")";
      c.addEventListener("click", () => select("node", n.id));
      el.circle[n.id] = c;
      // a ground station: a dish-like triangle over its disc, unlike any other node
      if (n.kind === "ground_station")
        el.mark[n.id] = svg("path", { class: "gs-mark", d: "M0,-4.5L4,3L-4,3Z" }, gn);
    }
    labelOrder = data.nodes.slice().sort((p, q) => (LABEL_RANK[p.kind] ?? 9) - (LABEL_RANK[q.kind] ?? 9)
      || p.name.localeCompare(q.name));
    project();
    legend();
    summary();
  }

  function legend() {
    const box = $("legend");
    box.textContent = "";
    const head = html("div", { class: "scale-head" }, "Secret key rate (log) of ", box);
    const pick = html("select", { id: "scale-layer", "aria-label": "colour scale layer" },
      null, head);
    const kinds = new Set(topo.links.map((l) => l.kind));
    for (const k of Object.keys(LAYER_NAME)) {
      if (k !== "all" && !kinds.has(k)) continue;
      const o = html("option", { value: k }, LAYER_NAME[k], pick);
      if (k === scaleLayer) o.selected = true;
    }
    pick.addEventListener("change", () => {
      scaleLayer = pick.value;
      updateScale();
      legend();
      paintLinks();
    });
    const stops = RAMP.map((c, i) => c + " " + (100 * i / (RAMP.length - 1)) + "%").join(",");
    html("div", { class: "ramp", style: "background:linear-gradient(90deg," + stops + ")" }, null, box);
    const ends = html("div", { class: "ends" }, null, box);
    html("span", {}, fmtRate(Math.pow(10, scale.lo)), ends);
    html("span", {}, fmtRate(Math.pow(10, scale.hi)), ends);
    const row = (draw, text) => {
      const r = html("div", { class: "row" }, null, box);
      const s = svg("svg", { viewBox: "0 0 24 12" }, r);
      draw(s);
      html("span", {}, text, r);
    };
    row((s) => svg("line", { x1: 1, y1: 6, x2: 23, y2: 6, stroke: "#ff4d4f", "stroke-width": 3,
      "stroke-dasharray": "5 3" }, s), "link down");
    row((s) => svg("line", { x1: 1, y1: 6, x2: 23, y2: 6, stroke: "#6b7785", "stroke-width": 3 }, s),
      "no report yet");
    row((s) => svg("circle", { cx: 12, cy: 6, r: 5, class: "down" }, s), "node stopped");
    const present = new Set(topo.nodes.map((n) => n.kind));
    if (topo.sats.length)
      row((s) => svg("path", { d: "M1,10Q12,0 23,10", class: "sat-link" }, s), "satellite KM-link");
    if (present.has("ground_station")) {
      row((s) => svg("line", { x1: 1, y1: 6, x2: 23, y2: 6, class: "sat-track" }, s),
        "satellite ground track");
      row((s) => svg("rect", { x: 2, y: 1, width: 20, height: 10, class: "sat-footprint" }, s),
        "satellite footprint");
    }
    for (const k of Object.keys(KIND_NAME)) {
      if (!present.has(k)) continue;
      row((s) => {
        svg("circle", { cx: 12, cy: 6, r: Math.min(5, KIND_R[k]), class: "k-" + k }, s);
        if (k === "ground_station")
          svg("path", { class: "gs-mark", d: "M0,-3.5L3,2.5L-3,2.5Z", transform: "translate(12,6)" }, s);
      }, KIND_NAME[k]);
    }
  }

  function summary() {
    const ids = Object.keys(topo.link);
    const down = ids.filter((i) => state.links[i] && !state.links[i].up).length;
    const stopped = state.nodes_down.length;
    $("summary").textContent = topo.nodes.length + " nodes" +
      (stopped ? " (" + stopped + " stopped)" : "") + " · " + ids.length + " QKD-links · " +
      down + " down · " + state.alarms.length + " active alarms";
  }

  /* ---------- live state ---------- */
  function applyState(s) {
    state = s;
    state.nodes_down = s.nodes_down || [];
    showClock(s.t);
    if (updateScale()) legend();
    paintLinks();
    const alarmed = new Set(s.alarms.map((a) => a.subject));
    const stopped = new Set(state.nodes_down);
    for (const id in el.circle) {
      el.circle[id].classList.toggle("alarmed", alarmed.has(id));
      el.circle[id].classList.toggle("down", stopped.has(id));
    }
    renderAlarms($("alarms"), s.alarms, true);
    // an outage starting or ending shows in the availability table now, not at its next poll
    const downNow = Object.keys(s.links).filter((i) => !s.links[i].up).sort().join(" ");
    if (downNow !== lastDown) { lastDown = downNow; refreshAvailability(); }
    // an alarm raised or cleared shows in the history now
    const alarmKey = s.alarms.map((x) => x.id).sort().join(" ");
    if (alarmKey !== lastAlarms) { lastAlarms = alarmKey; refreshHistory(); }
    $("alarm-count").textContent = String(s.alarms.length);
    $("alarm-count").classList.toggle("hot", s.alarms.length > 0);
    if (selected) { renderDetailAlarms(); renderFaultButton(); }
    summary();
  }

  function paintLinks() {
    const s = state;
    const alarmed = new Set(s.alarms.map((a) => a.subject));
    for (const id in el.line) {
      const line = el.line[id], st = s.links[id];
      if (!st) { line.classList.add("nodata"); line.style.stroke = ""; continue; }
      line.setAttribute("data-up", st.up ? "1" : "0");
      const c = st.up ? colourOf(st.skr_bps) : null;
      line.classList.toggle("nodata", st.up && !c);
      line.style.stroke = c || "";
      line.classList.toggle("alarmed", alarmed.has(id));
      line.firstChild.textContent = id + (st.up ? " · " + fmtRate(st.skr_bps) : " · DOWN");
    }
    raiseLinks();
  }

  /* Down links and the selected link are drawn again over the nodes, thicker, so that a
     cut shows through the relay markers along it; the copy lets clicks through to the
     nodes (the link itself stays clickable under them). */
  function raiseLinks() {
    const want = new Set();
    for (const id in state.links) if (!state.links[id].up && el.line[id]) want.add(id);
    if (selected && selected.type === "link") want.add(selected.id);
    for (const id of onTop) if (!want.has(id)) { el.over[id].remove(); delete el.over[id]; onTop.delete(id); }
    for (const id of want) {
      if (!onTop.has(id)) {
        el.over[id] = svg("line", { class: "link over", "data-over": id }, $("links-top"));
        onTop.add(id);
      }
      const o = el.over[id], line = el.line[id];
      o.setAttribute("data-up", line.getAttribute("data-up"));
      o.setAttribute("class", line.getAttribute("class") + " over");
      o.style.stroke = line.style.stroke;
      for (const a of ["x1", "y1", "x2", "y2"]) o.setAttribute(a, line.getAttribute(a) || "0");
    }
  }

  /* The main list shows root alarms; the alarms a root explains (a stopped node's links,
     a cut link's KM-links) are filed under it, shown on "+N related". The detail list of
     the selected element shows all of its own alarms. */
  function renderAlarms(ul, alarms, main) {
    ul.textContent = "";
    if (!alarms.length) { html("li", { class: "none" }, "no active alarms", ul); return; }
    const related = {};
    if (main) for (const a of alarms) if (a.cause) (related[a.cause] ||= []).push(a);
    for (const a of alarms) {
      if (main && a.cause) continue;
      const li = alarmItem(ul, a, main);
      const under = related[a.id] || [];
      if (!under.length) continue;
      li.setAttribute("data-related", String(under.length));
      const open = expanded.has(a.id);
      const t = html("button", { class: "related-toggle" },
        (open ? "− " : "+ ") + under.length + " related", li);
      t.addEventListener("click", (ev) => {
        ev.stopPropagation();
        if (expanded.has(a.id)) expanded.delete(a.id); else expanded.add(a.id);
        renderAlarms(ul, state.alarms, true);
      });
      for (const c of under) {
        const ci = alarmItem(ul, c, main);
        ci.classList.add("related");
        if (!open) ci.hidden = true;
      }
    }
  }

  function alarmItem(ul, a, main) {
    const acked = a.acknowledged_at !== null && a.acknowledged_at !== undefined;
    const li = html("li", { class: "sev-" + a.severity + (acked ? " acked" : ""),
      "data-alarm-subject": a.subject, "data-rule": a.rule, "data-alarm-id": a.id,
      "data-acked": acked ? "1" : "0" }, null, ul);
    if (a.cause) li.setAttribute("data-cause", a.cause);
    html("span", { class: "sev" }, a.severity, li);
    html("span", { class: "subj", title: a.rule }, a.subject, li);
    html("span", { class: "when" }, fmtTime(a.raised_at), li);
    html("span", { class: "text" }, a.text, li);
    if (acked) {
      html("span", { class: "ack-by" }, "acknowledged by " + a.acknowledged_by + " at " +
        fmtTime(a.acknowledged_at), li);
    } else if (main && canAct) {
      const b = html("button", { class: "ack", "data-ack": a.id }, "Acknowledge", li);
      b.addEventListener("click", (ev) => { ev.stopPropagation(); acknowledge(a.id, b); });
    }
    if (main) li.addEventListener("click", () => {
      if (topo.link[a.subject]) select("link", a.subject);
      else if (topo.node[a.subject]) select("node", a.subject);
      else {
        const m = /^km:(.+)~(.+)$/.exec(a.subject);
        if (m && topo.node[m[1]]) select("node", m[1]);
      }
    });
    return li;
  }

  function operator() {
    const name = $("operator").value.trim() || "operator";
    try { localStorage.setItem("qkdnet-operator", name); } catch (e) { /* private mode */ }
    return name;
  }

  /* ---------- operator session ---------- */
  // the CSRF token of the session (POST /api/login); every POST sends it in X-CSRF-Token
  let csrf = null;
  // a viewer reads only: no acknowledge or fault buttons (the server answers 403 anyway)
  let canAct = true;

  function post(url, body) {
    const headers = {};
    if (csrf) headers["X-CSRF-Token"] = csrf;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    return fetch(url, { method: "POST", headers, credentials: "same-origin",
      body: body === undefined ? undefined : JSON.stringify(body) });
  }

  // the session: the current one, or one from the login form (shown until a login works);
  // a replay has no login and answers {"open": true}
  async function session() {
    const r = await fetch("/api/session", { credentials: "same-origin" });
    if (r.ok) return r.json();
    if (r.status !== 401) throw new Error("HTTP " + r.status);
    const form = $("login");
    form.hidden = false;
    $("login-name").focus();
    return new Promise((resolve) => {
      form.addEventListener("submit", async (ev) => {
        ev.preventDefault();
        $("login-error").textContent = "";
        const answer = await fetch("/api/login", { method: "POST", credentials: "same-origin",
          headers: { "Content-Type": "application/json" },
          body: JSON.stringify({ name: $("login-name").value, password: $("login-password").value }) });
        $("login-password").value = "";
        if (!answer.ok) {
          $("login-error").textContent = answer.status === 401 ? "wrong name or password"
            : "login failed: HTTP " + answer.status;
          return;
        }
        form.hidden = true;
        resolve(answer.json());
      });
    });
  }

  function showOperator(who) {
    csrf = who.csrf || null;
    canAct = who.role !== "viewer";
    if (!who.name) return;
    $("operator").value = who.name;
    $("operator").readOnly = true;  // acknowledgements go under the logged-in name
    $("who-name").textContent = who.name + " (" + who.role + ")";
    $("who").hidden = false;
    $("logout").addEventListener("click", async () => {
      await post("/api/logout");
      location.reload();
    });
  }

  async function acknowledge(id, button) {
    button.disabled = true;
    try {
      const r = await post("/api/alarms/" + encodeURIComponent(id) + "/ack", { by: operator() });
      if (!r.ok) throw new Error((await r.json()).message || "HTTP " + r.status);
    } catch (e) { button.disabled = false; button.title = "not acknowledged: " + e.message; }
    // the next state event redraws the list with the acknowledgement
  }

  function connect() {
    const conn = $("conn");
    const es = new EventSource("/api/events");
    es.addEventListener("state", (ev) => {
      // a replay's badge (REPLAY) is replay.js's
      if (!document.body.classList.contains("replay")) { conn.textContent = "live"; conn.className = "conn-ok"; }
      try { applyState(JSON.parse(ev.data)); } catch (e) { console.error(e); }
    });
    es.onerror = () => { conn.textContent = "reconnecting"; conn.className = "conn-lost"; };
  }

  /* ---------- selection, detail, chart ---------- */
  function select(type, id) {
    selected = { type, id };
    for (const e of map.querySelectorAll(".selected")) e.classList.remove("selected");
    const info = $("detail-info");
    info.textContent = "";
    if (type === "sat") {
      const k = topo.sat[id];
      el.satLink[id].classList.add("selected");
      $("detail-title").textContent = "Satellite KM-link " + id;
      info.append("Between ground stations ");
      html("b", {}, topo.node[k.a].name, info); info.append(" and ");
      html("b", {}, topo.node[k.b].name, info);
      info.append(" · key relayed by satellite during night passes, no fibre");
      clearChart();
    } else if (type === "link") {
      const l = topo.link[id];
      el.line[id].classList.add("selected");
      $("detail-title").textContent = "QKD-link " + id;
      info.append("Between ");
      html("b", {}, topo.node[l.a].name, info); info.append(" and ");
      html("b", {}, topo.node[l.b].name, info);
      info.append(" · " + l.kind + " · device " + l.device_type + " · " + l.length_km + " km");
      showChart(id);
    } else {
      const n = topo.node[id];
      el.circle[id].classList.add("selected");
      $("detail-title").textContent = (KIND_NAME[n.kind] || n.kind) + " " + n.name;
      info.append(n.lat.toFixed(3) + "°, " + n.lon.toFixed(3) + "° · links: ");
      const links = topo.linksOf[id];
      if (!links.length) info.append("none");
      for (const lid of links) {
        const b = html("button", { "data-chart-link": lid }, lid, info);
        b.addEventListener("click", () => showChart(lid));
      }
      if (links.length) showChart(links[0]); else clearChart();
    }
    renderDetailAlarms();
    renderFaultButton();
    raiseLinks();
    layoutLabels();
  }

  /* Fault injection from the console: cut or repair the selected link, stop or start the
     selected node. Shown only when the server runs a live network. */
  function renderFaultButton() {
    const box = $("detail-actions");
    box.textContent = "";
    if (!faultsAllowed || !selected || selected.type === "sat") return;
    let action, label;
    if (selected.type === "link") {
      const st = state.links[selected.id];
      const endsStopped = state.nodes_down.includes(topo.link[selected.id].a) ||
        state.nodes_down.includes(topo.link[selected.id].b);
      action = st && !st.up && !endsStopped ? "repair" : "cut";
      label = action === "cut" ? "Cut this link" : "Repair this link";
    } else {
      action = state.nodes_down.includes(selected.id) ? "start" : "stop";
      label = action === "stop" ? "Stop this node" : "Start this node";
    }
    const b = html("button", { id: "fault-action", "data-action": action,
      class: action === "cut" || action === "stop" ? "danger" : "" }, label, box);
    const target = selected;
    b.addEventListener("click", async () => {
      b.disabled = true;
      const kind = target.type === "link" ? "links" : "nodes";
      try {
        const r = await post("/api/" + kind + "/" + encodeURIComponent(target.id) + "/" + action);
        if (!r.ok) throw new Error((await r.json()).message || "HTTP " + r.status);
      } catch (e) { html("span", { class: "muted" }, " failed: " + e.message, box); }
      // the server reports the fault at once; its state event redraws the button
    });
  }

  function renderDetailAlarms() {
    let subjects;
    if (selected.type === "sat") {
      const k = topo.sat[selected.id];
      subjects = (a) => a.subject === selected.id || a.subject === "km:" + k.a + "~" + k.b ||
        a.subject === "km:" + k.b + "~" + k.a;
    } else if (selected.type === "link") {
      const l = topo.link[selected.id];
      subjects = (a) => a.subject === selected.id || a.subject === "km:" + l.a + "~" + l.b ||
        a.subject === "km:" + l.b + "~" + l.a;
    } else {
      const mine = new Set(topo.linksOf[selected.id]);
      const re = new RegExp("^km:(.+)~(.+)$");
      subjects = (a) => {
        if (a.subject === selected.id || mine.has(a.subject)) return true;
        const m = re.exec(a.subject);
        return !!m && (m[1] === selected.id || m[2] === selected.id);
      };
    }
    renderAlarms($("detail-alarms"), state.alarms.filter(subjects), false);
  }

  function clearChart() {
    chartLink = null;
    const box = $("chart");
    box.textContent = "";
    box.removeAttribute("data-link");
  }

  async function showChart(id) {
    chartLink = id;
    for (const b of $("detail-info").querySelectorAll("button"))
      b.classList.toggle("on", b.getAttribute("data-chart-link") === id);
    let h;
    try {
      const r = await fetch("/api/history/" + encodeURIComponent(id));
      if (!r.ok) throw new Error("HTTP " + r.status);
      h = await r.json();
    } catch (e) { $("chart").textContent = "history unavailable: " + e.message; return; }
    if (chartLink !== id) return;  // another selection came in meanwhile
    drawChart(id, h);
  }

  function drawChart(id, h) {
    const box = $("chart");
    const w = Math.max(200, box.clientWidth), hh = Math.max(120, box.clientHeight);
    box.textContent = "";
    const s = svg("svg", { viewBox: "0 0 " + w + " " + hh, preserveAspectRatio: "none" }, box);
    const left = 72, right = 8, gap = 18, top = 14, bottom = 16;
    const ph = (hh - top - bottom - gap - 12) / 2;
    const ts = h.t.filter((t) => t !== null);
    const t0 = ts.length ? Math.min(...ts) : 0, t1 = ts.length ? Math.max(...ts) : 1;
    const xOf = (t) => left + (t1 > t0 ? (t - t0) / (t1 - t0) : 1) * (w - left - right);
    const panel = (y0, values, cls, title, fmt) => {
      const vs = values.filter((v) => v !== null);
      let lo = vs.length ? Math.min(0, ...vs) : 0, hi = vs.length ? Math.max(...vs) : 1;
      if (hi <= lo) hi = lo + (Math.abs(lo) || 1);
      const yOf = (v) => y0 + ph - ((v - lo) / (hi - lo)) * ph;
      svg("line", { class: "axis", x1: left, y1: y0 + ph, x2: w - right, y2: y0 + ph }, s);
      svg("line", { class: "axis", x1: left, y1: y0, x2: left, y2: y0 + ph }, s);
      svg("text", { x: left + 4, y: y0 - 3, class: "title-" + cls }, s).textContent =
        title + (vs.length ? " · now " + fmt(values[values.length - 1]) : " · no data");
      svg("text", { x: left - 4, y: y0 + 9, "text-anchor": "end" }, s).textContent = fmt(hi);
      svg("text", { x: left - 4, y: y0 + ph, "text-anchor": "end" }, s).textContent = fmt(lo);
      let d = "", pen = false;
      for (let i = 0; i < values.length; i++) {
        const v = values[i], t = h.t[i];
        if (v === null || t === null) { pen = false; continue; }
        d += (pen ? "L" : "M") + xOf(t).toFixed(1) + "," + yOf(v).toFixed(1);
        pen = true;
      }
      if (d) svg("path", { class: cls, d }, s);
    };
    panel(top, h.skr_bps, "skr", "SKR", fmtRate);
    panel(top + ph + gap + 12, h.qber, "qber", "QBER",
      (v) => (v === null || v === undefined ? "–" : (100 * v).toFixed(2) + " %"));
    const yb = hh - 3;
    svg("text", { x: left, y: yb }, s).textContent = fmtTime(ts.length ? t0 : null);
    svg("text", { x: w - right, y: yb, "text-anchor": "end" }, s).textContent =
      fmtTime(ts.length ? t1 : null);
    box.setAttribute("data-link", id);
  }

  /* ---------- satellites ---------- */
  /* Each satellite's ground track (dashed, one orbit either side), its footprint (the
     ground that sees it above the minimum elevation, translucent) and its marker, under
     the network; the ground stations in a pass ringed; a line per pass in progress. */
  function pathOf(points, close) {
    let d = "";
    for (const [lat, lon] of points) {
      const [x, y] = proj(lat, lon);
      d += (d ? "L" : "M") + x.toFixed(1) + "," + y.toFixed(1);
    }
    return d && close ? d + "Z" : d;
  }

  function fmtDuration(s) {
    if (s === null || s === undefined) return "–";
    s = Math.max(0, Math.round(s));
    if (s >= 3600) return Math.floor(s / 3600) + " h " + String(Math.floor((s % 3600) / 60))
      .padStart(2, "0") + " min";
    return s >= 60 ? Math.floor(s / 60) + " min " + String(s % 60).padStart(2, "0") + " s"
      : s + " s";
  }

  function drawSky() {
    const under = $("sky"), over = $("sats");
    under.textContent = ""; over.textContent = "";
    for (const id in el.circle) el.circle[id].classList.remove("in-pass");
    if (!sky || !proj) return;
    for (const sat of sky.satellites) {
      const fp = svg("path", { class: "sat-footprint", "data-sat-footprint": sat.id,
        d: pathOf(sat.footprint, true) }, under);
      svg("title", {}, fp).textContent = sat.id + " footprint (" +
        Math.round(sat.footprint_radius_km) + " km)";
      for (const seg of sat.track)
        svg("path", { class: "sat-track", "data-sat-track": sat.id, d: pathOf(seg, false) }, under);
      const [x, y] = proj(sat.lat, sat.lon);
      const g = svg("g", { class: "sat", "data-sat": sat.id,
        transform: "translate(" + x.toFixed(1) + "," + y.toFixed(1) + ")" }, over);
      svg("title", {}, g).textContent = sat.id + " · " + sat.lat.toFixed(2) + "°, " +
        sat.lon.toFixed(2) + "° · " + Math.round(sat.height_km) + " km up";
      svg("rect", { x: -4, y: -4, width: 8, height: 8, transform: "rotate(45)" }, g);
      svg("line", { x1: -11, y1: 0, x2: -5, y2: 0 }, g);
      svg("line", { x1: 5, y1: 0, x2: 11, y2: 0 }, g);
      svg("text", { x: 10, y: -8 }, g).textContent = sat.id;
      for (const p of sat.passes) if (el.circle[p.station]) el.circle[p.station].classList.add("in-pass");
    }
  }

  function renderPasses() {
    const ul = $("sat-passes");
    ul.textContent = "";
    const speed = sky.speedup > 0 ? sky.speedup : 1;
    $("sat-time").textContent = fmtTime(sky.t) + (speed !== 1 ? " · ×" + speed : "");
    let any = false;
    for (const sat of sky.satellites) {
      for (const p of sat.passes) {
        any = true;
        const st = topo.node[p.station];
        // the set comes in scenario time; the operator waits wall-clock time for it
        const li = html("li", { class: "pass", "data-pass-station": p.station,
          "data-pass-sat": sat.id }, null, ul);
        html("b", {}, "Pass in progress", li);
        li.append(": " + sat.id + " over " + (st ? st.name : p.station) + " · elevation " +
          p.elevation_deg.toFixed(1) + "° · " + Math.round(p.range_km) + " km · sets in " +
          fmtDuration(p.set_in_s === null ? null : p.set_in_s / speed) +
          (p.night ? " · night: making key" : " · daylight: no key"));
        li.addEventListener("click", () => { if (st) select("node", p.station); });
      }
      if (!sat.passes.length)
        html("li", { class: "muted", "data-sat-idle": sat.id }, sat.id + " over " +
          sat.lat.toFixed(1) + "°, " + sat.lon.toFixed(1) + "°: no pass in progress", ul);
    }
    ul.setAttribute("data-passing", any ? "1" : "0");
  }

  async function refreshSatellite() {
    let s;
    try {
      const r = await fetch("/api/satellite", { credentials: "same-origin" });
      if (!r.ok) return;
      s = await r.json();
    } catch (e) { return; }
    sky = s;
    $("sat-box").hidden = !s.satellites.length;
    drawSky();
    if (s.satellites.length) renderPasses();
  }

  /* ---------- availability ---------- */
  async function refreshAvailability() {
    let a;
    try {
      const r = await fetch("/api/availability");
      if (!r.ok) return;
      a = await r.json();
    } catch (e) { return; }
    const table = $("availability"), body = table.tBodies[0], foot = table.tFoot;
    body.textContent = ""; foot.textContent = "";
    const hours = a.start !== null && a.end !== null ? (a.end - a.start) / 3600 : null;
    $("avail-span").textContent = hours === null ? "(no reports yet)"
      : "over " + (hours < 1 ? (hours * 60).toFixed(1) + " min" : hours.toFixed(2) + " h");
    const rows = a.links.slice().sort((p, q) => (p.availability ?? 1) - (q.availability ?? 1));
    for (const r of rows) {
      const tr = html("tr", { "data-link": r.link }, null, body);
      html("td", {}, r.link, tr);
      html("td", {}, String(r.outages), tr);
      html("td", {}, r.outage_hours.toFixed(3), tr);
      html("td", {}, fmtPct(r.availability), tr);
      html("td", { class: r.down_now ? "down" : "" }, r.down_now ? "DOWN" : "up", tr);
      if (topo.link[r.link]) tr.addEventListener("click", () => select("link", r.link));
    }
    if (!rows.length) {
      const tr = html("tr", {}, null, body);
      html("td", { colspan: "5" }, "no outages", tr);
    }
    const sm = a.summary, tr = html("tr", {}, null, foot);
    html("td", {}, "All " + sm.links + " links", tr);
    html("td", {}, String(sm.links_with_outage), tr);
    html("td", {}, sm.outage_hours.toFixed(3), tr);
    html("td", {}, fmtPct(sm.availability), tr);
    html("td", {}, "", tr);
  }

  /* ---------- alarm history ---------- */
  /* Every alarm raised so far, newest first: when raised, when cleared (or still active)
     and for how long; a click selects its subject. */
  async function refreshHistory() {
    let a;
    try {
      const r = await fetch("/api/alarms", { credentials: "same-origin" });
      if (!r.ok) return;
      a = await r.json();
    } catch (e) { return; }
    const ul = $("alarm-history"), all = a.history || [];
    ul.textContent = "";
    const cleared = all.filter((x) => x.cleared_at !== null && x.cleared_at !== undefined).length;
    $("history-count").textContent = all.length + " raised · " + cleared + " cleared";
    if (!all.length) { html("li", { class: "none" }, "no alarm raised yet", ul); return; }
    const rows = all.slice().sort((p, q) => q.raised_at - p.raised_at).slice(0, HISTORY_SHOWN);
    for (const h of rows) {
      const open = h.cleared_at === null || h.cleared_at === undefined;
      const li = html("li", { class: "sev-" + h.severity + (open ? " open" : ""),
        "data-history-id": h.id, "data-rule": h.rule, "data-alarm-subject": h.subject }, null, ul);
      html("span", { class: "sev" }, h.severity, li);
      html("span", { class: "subj", title: h.rule }, h.subject, li);
      html("span", { class: "when" }, fmtTime(h.raised_at), li);
      html("span", { class: "text" }, h.rule + " · " + (open ? "active" : "cleared " +
        fmtTime(h.cleared_at) + " after " + fmtDuration(h.cleared_at - h.raised_at)), li);
      li.addEventListener("click", () => {
        if (topo.link[h.subject]) select("link", h.subject);
        else if (topo.node[h.subject]) select("node", h.subject);
      });
    }
  }

  /* ---------- start ---------- */
  let resizeTimer = null;
  window.addEventListener("resize", () => {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(() => { project(); if (chartLink) showChart(chartLink); }, 100);
  });

  async function start() {
    try { $("operator").value = localStorage.getItem("qkdnet-operator") || ""; } catch (e) { /* */ }
    const who = await session();
    showOperator(who);
    const r = await fetch("/api/topology");
    const data = await r.json();
    faultsAllowed = !!data.fault_injection && canAct;
    if (data.links.some((l) => l.kind === "backbone")) scaleLayer = "backbone";
    buildMap(data);
    wireZoom();
    wireSearch();
    connect();
    // the geography comes second: the network shows at once, the map fills in under it
    fetch("/basemap.geojson", { credentials: "same-origin" })
      .then((r) => (r.ok ? r.json() : null))
      .then((g) => { if (g) { geo = g; drawGeo(); map.setAttribute("data-geo", "1"); } })
      .catch(() => { /* no geography: the network still draws */ });
    refreshHistory();
    setInterval(refreshHistory, HISTORY_EVERY_MS);
    refreshAvailability();
    setInterval(refreshAvailability, AVAIL_EVERY_MS);
    if (data.nodes.some((n) => n.kind === "ground_station")) {
      refreshSatellite();
      setInterval(refreshSatellite, SAT_EVERY_MS);
    }
    setInterval(() => { if (chartLink) showChart(chartLink); }, CHART_EVERY_MS);
  }
  start().catch((e) => { $("summary").textContent = "failed to load the topology: " + e.message; });
})();
