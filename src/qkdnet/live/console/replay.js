// The replay bar of the O&M console: over `qkdnet console REPORT_DIR` (a twin run replayed)
// it marks the page REPLAY, shows the simulated date and time, and drives the player of
// /api/replay: play/pause, speed, a slider over the run's span and a typed date and time.
// Its own file beside console.js (like services.js): over a live network /api/replay is
// not there and this script does nothing.
(() => {
  "use strict";
  const POLL_MS = 250;
  const $ = (id) => document.getElementById(id);
  let csrf = null, info = null, dragging = false;

  function el(tag, attrs, text) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
    if (text !== undefined) node.textContent = text;
    return node;
  }
  const two = (v) => String(v).padStart(2, "0");
  // simulated s -> "YYYY-MM-DD HH:MM:SS" (UTC) and the value of a datetime-local input
  function dateOf(t) {
    const d = new Date(Date.parse(info.epoch) + 1000 * t);
    return d.getUTCFullYear() + "-" + two(d.getUTCMonth() + 1) + "-" + two(d.getUTCDate()) +
      "T" + two(d.getUTCHours()) + ":" + two(d.getUTCMinutes()) + ":" + two(d.getUTCSeconds());
  }
  function fmtSpeed(x) {
    return x >= 1000 ? (x / 1000).toLocaleString("en") + "k×" : x.toLocaleString("en") + "×";
  }

  async function send(body) {
    const headers = { "Content-Type": "application/json" };
    if (csrf) headers["X-CSRF-Token"] = csrf;
    const r = await fetch("/api/replay", { method: "POST", headers, credentials: "same-origin",
      body: JSON.stringify(body) });
    const answer = await r.json();
    $("replay-error").textContent = r.ok ? "" : answer.message || "HTTP " + r.status;
    if (r.ok) show(answer);
  }

  function bar(s, control) {
    const box = el("div", { id: "replay-bar", role: "group", "aria-label": "replay controls" });
    const play = el("button", { id: "replay-play", type: "button" }, "Play");
    const speed = el("select", { id: "replay-speed", "aria-label": "replay speed" });
    for (const x of s.speeds.includes(s.speed) ? s.speeds : s.speeds.concat([s.speed]).sort((a, b) => a - b)) {
      speed.append(el("option", { value: String(x) }, fmtSpeed(x)));
    }
    const seek = el("input", { id: "replay-seek", type: "range", min: String(s.start),
      max: String(s.end), step: "60", "aria-label": "replay position" });
    const at = el("input", { id: "replay-at", type: "datetime-local", step: "1",
      "aria-label": "go to date and time (UTC)", min: dateOf(s.start), max: dateOf(s.end) });
    const go = el("button", { id: "replay-go", type: "submit" }, "Go");
    const form = el("form", { id: "replay-goto" });
    form.append(at, el("span", { class: "muted" }, "UTC"), go);
    const status = el("span", { id: "replay-info", class: "muted" });
    const error = el("span", { id: "replay-error", role: "alert" });
    box.append(play, speed, seek, form, status, error);
    play.addEventListener("click", () => send({ action: info.playing ? "pause" : "play" }));
    speed.addEventListener("change", () => send({ action: "speed", speed: Number(speed.value) }));
    seek.addEventListener("input", () => { dragging = true; });
    seek.addEventListener("change", () => {
      dragging = false;
      send({ action: "seek", t: Number(seek.value) });
    });
    form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      if (at.value) send({ action: "seek", at: at.value });
    });
    if (!control) {  // a viewer watches; the server refuses a viewer's POST anyway
      for (const c of [play, speed, seek, at, go]) c.disabled = true;
      box.title = "a viewer watches the replay; an operator drives it";
    }
    $("bar").after(box);
  }

  function show(s) {
    info = s;
    const conn = $("conn");
    conn.textContent = "REPLAY";
    conn.className = "conn-replay";
    conn.title = "a replay of a finished twin run, not a live network";
    $("clock").textContent = dateOf(s.t).replace("T", " ") + " UTC";
    $("clock-zone").textContent = "simulated time";
    $("replay-play").textContent = s.playing ? "Pause" : "Play";
    $("replay-play").setAttribute("data-playing", s.playing ? "1" : "0");
    $("replay-speed").value = String(s.speed);
    if (!dragging) $("replay-seek").value = String(s.t);
    $("replay-info").textContent = fmtSpeed(s.speed) + " · " + s.alarms_raised + " of " +
      s.alarms + " alarms raised · " + s.alarms_active + " active";
    document.body.setAttribute("data-replay-t", String(s.t));
  }

  async function poll() {
    try {
      const r = await fetch("/api/replay", { credentials: "same-origin" });
      if (r.ok) show(await r.json());
    } catch (e) { /* the next poll tries again */ }
  }

  async function start() {
    const r = await fetch("/api/replay", { credentials: "same-origin" });
    if (!r.ok) return;  // a live network: no replay
    const s = await r.json();
    info = s;
    // console.js leaves the badge and the clock to this script from now on
    document.body.classList.add("replay");
    let control = true;
    try {
      const who = await (await fetch("/api/session", { credentials: "same-origin" })).json();
      csrf = who.csrf || null;
      control = !!who.open || who.role !== "viewer";
    } catch (e) { /* no session answer: the server decides on each call */ }
    bar(s, control);
    show(s);
    setInterval(poll, POLL_MS);
  }
  start().catch((e) => console.error(e));
})();
