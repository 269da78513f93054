// The Services panel of the O&M console: each SAE pair (a service) with its state, route,
// key delivered, refusals, ITU-T Y.3807 QoS and, while unserved, its root faults.
// Its own file (with services.css) beside console.js: it reads /api/services once a second
// and touches nothing of the rest of the page but the panel it adds to the side bar.
(() => {
  "use strict";
  const POLL_MS = 1000;
  const WHAT = { "node-down": "node down", "key-store-fault": "key store fault",
                 "qkd-link-down": "QKD-link down", "detector-current": "detector blinded",
                 "km-link-down": "KM-link down" };

  function el(tag, attrs, text) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function bits(x) {
    const units = [["Pbit", 1e15], ["Tbit", 1e12], ["Gbit", 1e9], ["Mbit", 1e6], ["kbit", 1e3]];
    for (const [name, size] of units) if (x >= size) return (x / size).toFixed(2) + " " + name;
    return x + " bit";
  }

  function ratio(x) { return x === null ? "–" : (100 * x).toFixed(x < 1 && x > 0.999 ? 3 : 1) + " %"; }
  function seconds(x) { return x === null ? "–" : x < 1 ? (1000 * x).toFixed(1) + " ms" : x.toFixed(1) + " s"; }

  function panel() {
    const box = el("section", { id: "svc-box", "aria-label": "services" });
    const head = el("h2", {}, "Services ");
    head.append(el("span", { id: "svc-count", class: "count" }, "0"));
    box.append(head, el("ul", { id: "services" }));
    const side = document.getElementById("side");
    const alarms = document.getElementById("alarm-box");
    if (alarms && alarms.parentNode === side) alarms.after(box);
    else (side || document.body).append(box);
    return box;
  }

  function row(s) {
    const li = el("li", { class: "svc state-" + s.state, "data-service": s.id, "data-state": s.state });
    const top = el("div", { class: "svc-top" });
    top.append(el("b", { class: "svc-id" }, s.master + " → " + s.slave),
               el("span", { class: "svc-state" }, s.state));
    li.append(top);
    li.append(el("div", { class: "svc-route" },
                 s.route ? s.route.join(" → ") : "no route between " + (s.source || "?") +
                 " and " + (s.target || "?")));
    const q = s.qos;
    li.append(el("div", { class: "svc-qos" },
                 bits(s.key_delivered_bits) + " delivered · " + s.requests + " requests, " +
                 s.requests_refused + " refused · availability " + ratio(q.availability) +
                 " · KKDLR " + ratio(q.kkdlr) + " · KKRD " + seconds(q.kkrd_s) +
                 (q.restoration_s === null ? "" : " · restored in " + seconds(q.restoration_s))));
    if (s.causes.length) {
      const cause = el("div", { class: "svc-cause" }, "root cause: ");
      s.causes.forEach((c, i) => {
        if (i) cause.append(", ");
        cause.append(el("span", { "data-rule": c.rule, "data-subject": c.subject },
                        (WHAT[c.rule] || c.rule) + " " + c.subject));
      });
      li.append(cause);
    } else if (s.state !== "served" && s.last_refusal) {
      li.append(el("div", { class: "svc-cause" }, "last refusal: " + s.last_refusal));
    }
    return li;
  }

  function show(data) {
    // a replay of a twin run reports no services: no panel then
    document.getElementById("svc-box").hidden = !data.reported;
    const list = document.getElementById("services");
    const order = { unserved: 0, degraded: 1, served: 2 };
    const services = data.services.slice().sort(
      (a, b) => order[a.state] - order[b.state] || a.id.localeCompare(b.id));
    list.replaceChildren(...services.map(row));
    if (!services.length) {
      list.append(el("li", { class: "none" }, "No service yet: one begins at an SAE's first key request."));
    }
    const bad = services.filter((s) => s.state === "unserved").length;
    const count = document.getElementById("svc-count");
    count.textContent = bad ? bad + " unserved" : String(services.length);
    count.classList.toggle("hot", bad > 0);
  }

  async function poll() {
    try {
      const r = await fetch("/api/services", { credentials: "same-origin" });
      if (r.ok) show(await r.json());  // 401 before the login: the next poll tries again
    } catch (e) { /* the server is away: keep the last view */ }
    setTimeout(poll, POLL_MS);
  }

  function start() {
    const style = el("link", { rel: "stylesheet", href: "/services.css" });
    document.head.append(style);
    panel();
    poll();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
