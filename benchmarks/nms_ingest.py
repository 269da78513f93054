"""How many telemetry records per second the NMS ingests for the full CN-QCN network.

Each step is one batch of every QKD-link and one of every KM-link (2,177 records). Three
rows: "ingest" times ``Nms.ingest`` alone over batches built beforehand (the NMS's own
cost); "build + ingest" also builds and validates the batches (the producer's cost); "via
EMS" builds the batches, splits them through the seven regional EMSs and ingests every
region's share (the whole reporting path). About one step in fifty flips some links down or
up, so the outage timelines do work too. Target: at least 100,000 records/s.

Then the O&M console's update latency: a real ``qkdnet serve`` of CN-QCN in a subprocess,
its console in headless Chromium (Playwright, /usr/bin/chromium) at 1920x1080. For each of
``--cuts`` backbone QKD-links, after a random pause of up to 1 s (so that the cuts fall at
any phase of the report and push intervals): "cut -> shown" is the time from the POST of
the cut to the page showing the line down and the link's qkd-link-down alarm; "repair ->
cleared" from the POST of the repair to the line up and the alarm gone. Median, p95 and
max, in ms. "render" is the JavaScript time the page spends on one ``state`` event
(parsing and applying it; layout and paint not included), timed by wrapping the page's
``EventSource`` listener, since console.js exposes no hook. Without Chromium or Playwright
(or with ``--sse``) the same cuts are timed on the ``/api/events`` stream instead: the
time to the first ``state`` event that shows them, not in-page. Target: updates in the
page within 1 s.

    python benchmarks/nms_ingest.py [--batches 2000] [--history 1024] [--seed S]
        [--no-console | --sse] [--cuts 10]
"""

from __future__ import annotations

import argparse
import json
import random
import secrets
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable, Generator
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from qkdnet.live.launch import start_serve
from qkdnet.live.operators import OperatorFile
from qkdnet.management.nms import Nms, ems_for
from qkdnet.management.om_view import link_kind
from qkdnet.management.telemetry import KMLinkTelemetry, LinkTelemetry
from qkdnet.topology.cn_qcn import build_cn_qcn
from qkdnet.topology.model import Network

TARGET_RECORDS_PER_S = 100_000
TARGET_UPDATE_S = 1.0
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
BROWSER_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update",
                "--disable-sync"]
WAIT_S = 15.0  # longest wait for one update before the benchmark gives up
# Times each call of the page's `state` listener (JSON parse and DOM update) in __renderMs.
RENDER_PROBE = """(() => {
  window.__renderMs = [];
  const add = EventSource.prototype.addEventListener;
  EventSource.prototype.addEventListener = function (type, fn, options) {
    if (type !== "state") return add.call(this, type, fn, options);
    return add.call(this, type, (ev) => {
      const t = performance.now();
      fn(ev);
      window.__renderMs.push(performance.now() - t);
    }, options);
  };
})();"""


def _maker(network: Network, seed: int
           ) -> Callable[[int], tuple[LinkTelemetry, KMLinkTelemetry]]:
    """A function from step number to that step's (QKD-link, KM-link) batches."""
    rng = np.random.default_rng(seed)
    links, kms = tuple(network.link), tuple(network.km_link)
    skr = rng.uniform(1e3, 5e4, len(links))
    qber = rng.uniform(0.01, 0.04, len(links))
    key = rng.uniform(0, 1e8, len(kms))
    rate = rng.uniform(1e3, 5e4, len(kms))
    link_up = np.ones(len(links), dtype=bool)
    km_up = np.ones(len(kms), dtype=bool)
    alarm = np.zeros(len(links), dtype=bool)

    def make(step: int) -> tuple[LinkTelemetry, KMLinkTelemetry]:
        if step % 50 == 49:  # a few links change state now and then
            link_up[rng.integers(0, len(links), 8)] ^= True
            km_up[rng.integers(0, len(kms), 8)] ^= True
        t = float(step)
        return (LinkTelemetry(t, links, skr, qber, link_up, alarm),
                KMLinkTelemetry(t, kms, key, rate, km_up))

    return make


def _rate(network: Network, args: argparse.Namespace, mode: str) -> tuple[int, float]:
    """Records ingested and seconds taken in one mode."""
    make = _maker(network, args.seed)
    nms = Nms(network, history_points=args.history)
    if mode == "ingest":
        batches = [b for step in range(args.batches) for b in make(step)]
        start = time.perf_counter()
        for batch in batches:
            nms.ingest(batch)
    elif mode == "build + ingest":
        start = time.perf_counter()
        for step in range(args.batches):
            for batch in make(step):
                nms.ingest(batch)
    else:
        emss = list(ems_for(network).values())
        start = time.perf_counter()
        for step in range(args.batches):
            links, kms = make(step)
            for ems in emss:
                nms.ingest(ems.collect(links))
            for ems in emss:
                nms.ingest(ems.collect(kms))
    return nms.records, time.perf_counter() - start


def backbone_links(network: Network, n: int) -> list[str]:
    """``n`` QKD-links between backbone nodes, spread over the list of them."""
    ids = [lk.id for lk in network.qkd_links if link_kind(network, lk.id) == "backbone"]
    return [ids[i * len(ids) // n] for i in range(min(n, len(ids)))]


#: The operator the benchmark logs in as (added to the served folder with a random password).
BENCH_OPERATOR = "bench"


def _login(folder: Path, om_url: str) -> tuple[httpx.Client, str]:
    """A client logged in to the O&M port as BENCH_OPERATOR (sending its CSRF token), and
    the password (for the page's login form)."""
    password = secrets.token_urlsafe(16)
    OperatorFile(folder).add(BENCH_OPERATOR, "operator", password, replace=True)
    om = httpx.Client(timeout=5)
    answer = om.post(f"{om_url}/api/login", json={"name": BENCH_OPERATOR, "password": password})
    answer.raise_for_status()
    om.headers["X-CSRF-Token"] = answer.json()["csrf"]
    return om, password


def _post(om: httpx.Client, om_url: str, link: str, action: str) -> float:
    """POST a cut or repair of ``link``; the perf_counter time just before."""
    t0 = time.perf_counter()
    om.post(f"{om_url}/api/links/{link}/{action}").raise_for_status()
    return t0


def _page_latencies(om: httpx.Client, password: str, om_url: str, links: list[str], seed: int
                    ) -> tuple[list[float], list[float], list[float]]:
    """Seconds from each cut to the page showing it and from each repair to the page
    clearing it, and the page's ms per ``state`` event."""
    from playwright.sync_api import sync_playwright

    pause = random.Random(seed)
    cuts: list[float] = []
    repairs: list[float] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1920, "height": 1080})
            page.add_init_script(RENDER_PROBE)
            page.goto(om_url)
            page.fill("#login-name", BENCH_OPERATOR)
            page.fill("#login-password", password)
            page.click("#login-submit")
            shown = """([id, down]) => {
              const line = document.querySelector(`line[data-link="${id}"]`);
              const alarm = document.querySelector(
                `#alarms li[data-alarm-subject="${id}"][data-rule="qkd-link-down"]`);
              return !!line && !line.classList.contains("nodata")
                && (line.dataset.up === "0") === down && !!alarm === down;
            }"""
            ms = WAIT_S * 1000
            for link in links:
                page.wait_for_function(shown, arg=[link, False], polling="raf", timeout=ms)
            for link in links:
                time.sleep(pause.uniform(0.0, 1.0))
                t0 = _post(om, om_url, link, "cut")
                page.wait_for_function(shown, arg=[link, True], polling="raf", timeout=ms)
                cuts.append(time.perf_counter() - t0)
                time.sleep(pause.uniform(0.0, 1.0))
                t0 = _post(om, om_url, link, "repair")
                page.wait_for_function(shown, arg=[link, False], polling="raf", timeout=ms)
                repairs.append(time.perf_counter() - t0)
            render: list[float] = page.evaluate("window.__renderMs")
        finally:
            browser.close()
    return cuts, repairs, render


def _states(om: httpx.Client, om_url: str) -> Generator[dict[str, Any], None, None]:
    """The payloads of the ``state`` events of ``/api/events``, as they arrive."""
    with om.stream("GET", f"{om_url}/api/events", timeout=WAIT_S) as response:
        event = ""
        for line in response.iter_lines():
            if line.startswith("event:"):
                event = line.removeprefix("event:").strip()
            elif line.startswith("data:") and event == "state":
                yield json.loads(line.removeprefix("data:"))


def _sse_latencies(om: httpx.Client, om_url: str, links: list[str], seed: int
                   ) -> tuple[list[float], list[float]]:
    """Seconds from each cut to the first ``state`` event that shows it and from each
    repair to the first that shows it cleared."""
    pause = random.Random(seed)
    states = _states(om, om_url)

    def wait(link: str, down: bool) -> None:
        deadline = time.perf_counter() + WAIT_S
        for s in states:
            alarmed = any(a["subject"] == link and a["rule"] == "qkd-link-down"
                          for a in s["alarms"])
            if link in s["links"] and (not s["links"][link]["up"]) == down == alarmed:
                return
            if time.perf_counter() > deadline:
                break
        raise TimeoutError(f"no state event showed {link} {'down' if down else 'up'}")

    cuts: list[float] = []
    repairs: list[float] = []
    try:
        for link in links:
            wait(link, False)
        for link in links:
            time.sleep(pause.uniform(0.0, 1.0))
            t0 = _post(om, om_url, link, "cut")
            wait(link, True)
            cuts.append(time.perf_counter() - t0)
            time.sleep(pause.uniform(0.0, 1.0))
            t0 = _post(om, om_url, link, "repair")
            wait(link, False)
            repairs.append(time.perf_counter() - t0)
    finally:
        states.close()
    return cuts, repairs


def _row(name: str, values: list[float], unit: float = 1000.0) -> str:
    """Median, p95 and max of ``values`` (in ms after multiplying by ``unit``)."""
    ms = sorted(v * unit for v in values)
    p95 = ms[min(len(ms) - 1, round(0.95 * (len(ms) - 1)))]
    return (f"{name:>18s} {len(ms):5d} {statistics.median(ms):8.1f} {p95:8.1f} "
            f"{ms[-1]:8.1f}")


def console_latency(network: Network, args: argparse.Namespace) -> None:
    """Serve CN-QCN, time cuts and repairs of backbone links in the console (or on the
    event stream), print the figures."""
    links = backbone_links(network, args.cuts)
    in_page = not args.sse and Path(CHROMIUM).exists()
    if in_page:
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            in_page = False
    with tempfile.TemporaryDirectory(prefix="qkdnet-bench-") as folder:
        start = time.perf_counter()
        served = start_serve(Path(folder), "cn-qcn", ["--prefill-bits", "65536"],
                             timeout_s=120)
        try:
            om_url = str(served.manifest["om_url"])
            om, password = _login(Path(folder), om_url)
            print(f"\nqkdnet serve cn-qcn started in {time.perf_counter() - start:.1f} s; "
                  f"{len(links)} backbone QKD-links cut and repaired one at a time")
            render: list[float] = []
            if in_page:
                print("console update latency, in the page (headless Chromium, 1920x1080):")
                cuts, repairs, render = _page_latencies(om, password, om_url, links, args.seed)
            else:
                print("console update latency, SSE ONLY (first /api/events state event, "
                      "not in the page):")
                cuts, repairs = _sse_latencies(om, om_url, links, args.seed)
        finally:
            served.stop()
    print(f"{'ms':>18s} {'n':>5s} {'median':>8s} {'p95':>8s} {'max':>8s}")
    print(_row("cut -> shown", cuts))
    print(_row("repair -> cleared", repairs))
    if render:
        print(_row("render per event", render, unit=1.0))
    worst = max(cuts + repairs)
    ok = "yes" if worst <= TARGET_UPDATE_S else "NO"
    where = "in the page" if in_page else "on the event stream"
    print(f"updates {where} within {TARGET_UPDATE_S:g} s: {ok} (max {worst * 1000:.0f} ms)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=2000,
                        help="steps, each one QKD-link and one KM-link batch")
    parser.add_argument("--history", type=int, default=1024, help="ring-buffer points per link")
    parser.add_argument("--seed", type=int, default=2025)
    parser.add_argument("--no-console", action="store_true",
                        help="skip the console latency (no qkdnet serve, no browser)")
    parser.add_argument("--sse", action="store_true",
                        help="time the console updates on the event stream, not in the page")
    parser.add_argument("--cuts", type=int, default=10,
                        help="backbone QKD-links to cut and repair for the console latency")
    args = parser.parse_args()
    network = build_cn_qcn()
    per_step = len(network.qkd_links) + len(network.km_links)
    print(f"cn-qcn: {len(network.qkd_links):,} QKD-links + {len(network.km_links):,} KM-links "
          f"= {per_step:,} records per step, {args.batches:,} steps")
    print(f"{'mode':>15s} {'records':>10s} {'seconds':>8s} {'records/s':>12s}")
    ingest_rate = 0.0
    for mode in ("ingest", "build + ingest", "via EMS"):
        records, seconds = _rate(network, args, mode)
        rate = records / seconds
        if mode == "ingest":
            ingest_rate = rate
        print(f"{mode:>15s} {records:10,d} {seconds:8.2f} {rate:12,.0f}")
    ok = "yes" if ingest_rate >= TARGET_RECORDS_PER_S else "NO"
    print(f"NMS ingests at least {TARGET_RECORDS_PER_S:,} records/s: {ok} "
          f"({ingest_rate:,.0f} records/s)")
    if not args.no_console:
        console_latency(network, args)


if __name__ == "__main__":
    main()
