"""`qkdnet twin` and its report folder: every figure and table is written with the data
behind it, the page stands alone, the numbers agree with the run, and the same seed gives
the same report."""

from __future__ import annotations

import csv
import hashlib
import itertools
import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from qkdnet.cli import app
from qkdnet.management.availability import availability, hours_per_week, total
from qkdnet.twin.engine import TwinResult, run_twin
from qkdnet.twin.report import write_report
from qkdnet.twin.scenario import load_twin_scenario
from qkdnet.units import HOUR_S

runner = CliRunner()
EXAMPLES = Path(__file__).parents[2] / "examples"

SCENARIO = """\
qkdnet_twin: 1
network: cn-qcn
weeks: 2
seed: 5
faults:
  - {link: zhumadian--zhumadian-xinyang-r1, at_h: 30, duration_h: 2}
  - {link: tieling--shenyang, at_h: 200, duration_h: 1.5}
"""

FILES = ("index.html", "summary.json", "fig5a_link_skr.png", "fig5a_link_skr.csv",
         "fig5b_segment_skr.png", "fig5b_segment_skr.csv", "table1_hours_unserved.csv",
         "fig3_4_measured_vs_ideal.png", "fig3_4_measured_vs_ideal.csv", "pools.png",
         "pools.csv", "services.csv", "links.csv", "alarms.csv", "telemetry.npz",
         "network.json", "network_map.png")


@pytest.fixture(scope="module")
def scenario_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("twin") / "short.yaml"
    path.write_text(SCENARIO)
    return path


@pytest.fixture(scope="module")
def result(scenario_file: Path) -> TwinResult:
    return run_twin(load_twin_scenario(scenario_file))


@pytest.fixture(scope="module")
def report(result: TwinResult, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("report")
    write_report(result, folder)
    return folder


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open() as f:
        return list(csv.DictReader(f))


def test_the_report_folder_holds_every_figure_with_its_data(report: Path) -> None:
    for name in FILES:
        assert (report / name).stat().st_size > 0, name
    for png in report.glob("*.png"):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_page_stands_alone(report: Path) -> None:
    """No file or network reference: the figures are embedded."""
    page = (report / "index.html").read_text()
    sources = re.findall(r'(?:src|href)="([^"]*)"', page)
    assert sources and all(s.startswith("data:image/png;base64,") for s in sources)
    assert page.count("<img") == 6  # with the satellite's passes and the network map
    for heading in ("Network", "Fig. 5a", "Fig. 5b", "Table 1", "Fig. 3 and 4", "Availability",
                    "Key pools", "Demands", "Satellite"):
        assert heading in page


def test_fig5a_lists_the_64_links_harbin_to_shenzhen(report: Path, result: TwinResult) -> None:
    rows = _rows(report / "fig5a_link_skr.csv")
    assert len(rows) == 64
    assert rows[0]["link"].startswith("harbin--") and rows[-1]["link"].endswith("--shenzhen")
    assert [r["segment"] for r in rows].count("Guangzhou–Shenzhen") == 2
    # the nodes Fig. 5a's axis names: the path from Harbin to Shenzhen, hop by hop
    assert rows[0]["from"] == "harbin" and rows[-1]["to"] == "shenzhen"
    assert all(a["to"] == b["from"] for a, b in itertools.pairwise(rows))
    net = result.scenario.network
    assert all(set(net.link[r["link"]].ends) == {r["from"], r["to"]} for r in rows)
    for row in rows:
        i = result.index[row["link"]]
        assert float(row["average_skr_kbps"]) == pytest.approx(result.mean_bps[i] / 1e3,
                                                               rel=1e-5)


def test_table1_is_the_services_outages_per_week(report: Path, result: TwinResult) -> None:
    rows = _rows(report / "table1_hours_unserved.csv")
    assert [r["week"] for r in rows] == ["1", "2", "sum"]
    for seg in result.segments:
        name = next(k for k in rows[0] if k.startswith(result.scenario.network.node[
            seg.source].name + "–"))
        weekly = hours_per_week(seg.service.outages, 2)
        assert [float(rows[w][name]) for w in range(2)] == pytest.approx(weekly, abs=1e-5)
        assert float(rows[2][name]) == pytest.approx(total(seg.service.outages) / HOUR_S,
                                                     abs=1e-5)
    # The scripted cut on the Harbin-Beijing chain (tieling--shenyang) is in week 2.
    assert float(rows[1]["Harbin–Beijing"]) >= 1.5 - 1e-6


def test_a_scripted_cut_raises_a_link_down_alarm_that_clears_on_repair(
        report: Path) -> None:
    """The cut of tieling--shenyang at 200 h for 1.5 h: the NMS rule raises a critical
    link-down alarm at the first step fully down and clears it at the repair's step."""
    rows = [r for r in _rows(report / "alarms.csv")
            if r["rule"] == "qkd-link-down" and r["subject"] == "tieling--shenyang"
            and 199 <= float(r["raised_h"]) <= 202]
    assert len(rows) == 1 and rows[0]["severity"] == "critical"
    step_h = 300 / HOUR_S
    assert 200 <= float(rows[0]["raised_h"]) <= 200 + 2 * step_h
    assert 201.5 <= float(rows[0]["cleared_h"]) <= 201.5 + 2 * step_h


def test_links_csv_carries_the_key_accounting(report: Path) -> None:
    rows = _rows(report / "links.csv")
    assert len(rows) == 1066
    made = sum(float(r["made_bits"]) for r in rows)
    rest = sum(float(r["used_bits"]) + float(r["pooled_bits"]) + float(r["discarded_bits"])
               for r in rows)
    assert made > 0 and rest == pytest.approx(made, rel=1e-5)
    assert sum(float(r["used_bits"]) for r in rows) > 0


def test_field_links_sit_below_their_ideal_curve(report: Path) -> None:
    rows = _rows(report / "fig3_4_measured_vs_ideal.csv")
    below = [float(r["average_skr_per_pair_kbps"]) <= float(r["ideal_skr_kbps"]) * 1.0001
             for r in rows]
    assert all(below)


def test_fig3_4_states_each_types_links_and_both_curves(report: Path,
                                                       result: TwinResult) -> None:
    """The section names how many links of each type the network holds, and the CSV gives
    each link's ideal and pessimistic-corner SKR at its loss (pessimistic below ideal)."""
    page = (report / "index.html").read_text(encoding="utf-8")
    for name in ("I", "II", "III", "IV", "V", "VI", "VII"):
        count = sum(lk.device_type == name for lk in result.scenario.network.qkd_links)
        assert f"type {name}: {count}," in page or f"type {name}: {count}." in page
    rows = _rows(report / "fig3_4_measured_vs_ideal.csv")
    assert all(float(r["pessimistic_skr_kbps"]) <= float(r["ideal_skr_kbps"]) for r in rows)
    assert any(float(r["pessimistic_skr_kbps"]) < float(r["ideal_skr_kbps"]) for r in rows)


def test_summary_matches_the_run(report: Path, result: TwinResult) -> None:
    data = json.loads((report / "summary.json").read_text())
    assert data["watched_links"] == 64
    assert [s["links"] for s in data["segments"]] == [len(s.links) for s in result.segments]
    assert data["max_conservation_error_bits"] < 1e-6 * data["key_made_bits"]


def test_cli_runs_a_scenario_and_the_same_seed_gives_the_same_report(
        scenario_file: Path, tmp_path: Path) -> None:
    digests = []
    for name in ("a", "b"):
        out = tmp_path / name
        done = runner.invoke(app, ["twin", "--scenario", str(scenario_file), "--out", str(out)])
        assert done.exit_code == 0, done.output
        assert "Harbin–Beijing" in done.output and "report:" in done.output
        digests.append({f: hashlib.sha256((out / f).read_bytes()).hexdigest()
                        for f in FILES})
    assert digests[0] == digests[1]
    other = tmp_path / "c"
    assert runner.invoke(app, ["twin", "--scenario", str(scenario_file), "--seed", "6",
                               "--out", str(other)]).exit_code == 0
    assert (other / "links.csv").read_bytes() != (tmp_path / "a" / "links.csv").read_bytes()


def test_cli_refuses_an_impossible_scenario_before_running(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("qkdnet_twin: 1\nweeks: 1\nfaults:\n"
                   "  - {link: hefei--luan, at_h: 1, duration_h: -2}\n")
    done = runner.invoke(app, ["twin", "--scenario", str(bad), "--out", str(tmp_path / "r")])
    assert done.exit_code == 2
    assert "bad.yaml:4: faults[0].duration_h" in done.output
    assert not (tmp_path / "r").exists()


def _png_size(path: Path) -> tuple[int, int]:
    """Width and height (px) from a PNG's IHDR."""
    data = path.read_bytes()
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def test_the_page_speaks_human_units_and_explains_the_discarded_key(
        report: Path, result: TwinResult) -> None:
    """Amounts of key as 1.18 Pbit and the like (never "... Gbit)" headers of raw numbers),
    and a paragraph on the key discarded because pools were full, with its share."""
    page = (report / "index.html").read_text(encoding="utf-8")
    assert "(Gbit)" not in page and "(kbit/s)</th>" not in page
    assert re.search(r"<td>key made</td><td>\d{1,3}(\.\d+)? [kMGTP]bit</td>", page)
    share = 100 * result.discarded_bits.sum() / result.made_bits.sum()
    assert "Key discarded because pools were full" in page
    assert f"{share:.1f}% of the key made" in page
    assert re.search(r"\d+ of 1066 pools overflowed", page)


def test_the_papers_values_are_drawn_for_cn_qcn_only(report: Path, tmp_path: Path) -> None:
    """cn-qcn on the paper's path: the paper's SKR and hours beside the twin's; the same
    report of another network: no paper column, row or line."""
    page = (report / "index.html").read_text(encoding="utf-8")
    assert "<th>paper</th>" in page and "paper sum" in page
    ring = tmp_path / "ring.yaml"
    ring.write_text(f"qkdnet_twin: 1\nnetwork: {EXAMPLES / 'three-city-ring.yaml'}\n"
                    "weeks: 0.2\nsegments: [hefei, shanghai, sh-u1]\n")
    out = tmp_path / "report"
    write_report(run_twin(load_twin_scenario(ring)), out)
    other = (out / "index.html").read_text(encoding="utf-8")
    assert "Fig. 5b" in other and "Table 1" in other
    for mark in ("<th>paper</th>", "paper sum", "(paper", "paper's figures"):
        assert mark not in other


def test_empty_panels_are_dropped(tmp_path: Path) -> None:
    """A backbone-only network without demands: Fig. 3/4 has only the backbone panel and the
    pools figure no route panel (half the width, not quite two thirds of the height)."""
    net = tmp_path / "two.yaml"
    net.write_text("""\
qkdnet_scenario: 1
name: two-cities
regions: [{id: east, name: East}]
nodes:
  - {id: a, name: A, kind: backbone_access, lat: 31.8, lon: 117.2, city: A, region: east}
  - {id: b, name: B, kind: backbone_access, lat: 32.0, lon: 118.8, city: B, region: east}
qkd_links:
  - {a: a, b: b, length_km: 80, device_type: I}
""")
    out = tmp_path / "report"
    write_report(run_twin(load_twin_scenario(net, weeks=0.1)), out)
    assert _png_size(out / "fig3_4_measured_vs_ideal.png") == (660, 528)
    assert _png_size(out / "pools.png")[1] == 396
    page = (out / "index.html").read_text(encoding="utf-8")
    assert "Fig. 4: metro" not in page and "No demands in this scenario" in page


def test_parquet_tables_hold_the_same_rows_as_the_csv(result: TwinResult,
                                                      report: Path, tmp_path: Path) -> None:
    """--format parquet writes each table as .parquet (no .csv), row for row the CSV's."""
    import pandas as pd

    write_report(result, tmp_path, "parquet")
    assert not list(tmp_path.glob("*.csv"))
    for name in ("links", "services", "segments", "table1_hours_unserved", "alarms"):
        got = pd.read_parquet(tmp_path / f"{name}.parquet")
        want = pd.read_csv(report / f"{name}.csv", keep_default_na=True,
                           dtype={"week": str} if name.startswith("table1") else None)
        assert list(got.columns) == list(want.columns)
        pd.testing.assert_frame_equal(got.reset_index(drop=True), want, check_dtype=False)


def test_service_qos_csv_gives_each_demand_its_y3807_qos(report: Path,
                                                         result: TwinResult) -> None:
    """Each demand is a service with its state at the end, KKDLR = 1 - served fraction,
    availability over the run and, where it was unserved and recovered, the length of its
    last unserved spell; the page's section names Y.3807."""
    rows = {r["service"]: r for r in _rows(report / "service_qos.csv")}
    assert set(rows) == {v.demand.id for v in result.services} and rows
    end = result.scenario.duration_s
    for v in result.services:
        row = rows[v.demand.id]
        assert float(row["kkdlr"]) == pytest.approx(1 - v.served_fraction, abs=1e-5)
        assert float(row["availability"]) == pytest.approx(
            availability(v.outages, 0.0, end), abs=1e-5)
        assert int(row["outages"]) == len(v.outages)
        closed = [o for o in v.outages if o.end < end]
        if closed:
            assert float(row["last_restoration_h"]) == pytest.approx(
                closed[-1].length / HOUR_S, abs=1e-5)
        else:
            assert row["last_restoration_h"] == ""
        assert row["state_at_end"] in ("served", "degraded", "unserved")
        assert (row["state_at_end"] == "served") == (not v.outages
                                                     and v.served_fraction >= 1.0)
    assert "ITU-T Y.3807" in (report / "index.html").read_text()
