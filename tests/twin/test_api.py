"""The twin's Python API (``qkdnet.twin``): run a scenario, its tables as DataFrames that
match the run, the report written as Parquet and read back, and two reports diffed."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from qkdnet import twin
from qkdnet.errors import ParameterError, ScenarioError
from qkdnet.management.availability import total
from qkdnet.units import HOUR_S

RING = Path(__file__).parents[2] / "examples" / "three-city-ring.yaml"


@pytest.fixture(scope="module")
def result() -> twin.TwinResult:
    return twin.run(RING, weeks=0.2, seed=3)


def test_run_takes_a_file_and_the_weeks_and_seed_replace_its_own(
        result: twin.TwinResult) -> None:
    """A network's scenario file runs with the given weeks and seed."""
    assert result.scenario.network.name == "three-city-ring"
    assert result.scenario.duration_s == pytest.approx(0.2 * 7 * 86400)
    assert result.scenario.seed == 3


def test_frames_are_the_runs_tables(result: twin.TwinResult) -> None:
    """links: one row per QKD-link with its mean SKR; km_links: the pools' accounting."""
    frames = twin.frames(result)
    assert {"links", "km_links", "services", "pools", "alarms"} <= set(frames)
    links = frames["links"]
    assert isinstance(links, pd.DataFrame) and len(links) == len(result.link_ids)
    assert links["average_skr_kbps"].to_numpy() == pytest.approx(result.mean_bps / 1e3,
                                                                 rel=1e-5)
    km = frames["km_links"].set_index("km_link")
    assert list(km.index) == list(result.km_link_ids)
    assert (km["made_bits"] - km["used_bits"] - km["pooled_bits"]
            - km["discarded_bits"]).abs().max() <= 1e-6 * km["made_bits"].sum()
    assert set(km.loc[km["kind"] == "remote"].index) == {"km-nanjing-shanghai",
                                                          "km-shanghai-hefei"}


def test_a_parquet_report_reads_back_as_the_same_frames(result: twin.TwinResult,
                                                        tmp_path: Path) -> None:
    """write_report(fmt="parquet") then read_report: the same tables, value for value."""
    twin.write_report(result, tmp_path, fmt="parquet")
    back = twin.read_report(tmp_path)
    frames = twin.frames(result)
    for name in ("links", "km_links", "pools"):
        pd.testing.assert_frame_equal(back[name], frames[name], check_dtype=False)


def test_diff_of_a_run_against_itself_changes_nothing_and_names_its_segments(
        tmp_path: Path) -> None:
    """The segments of a watched path, each with a change of 0 against the same run."""
    doc = tmp_path / "ring.yaml"
    doc.write_text(f"qkdnet_twin: 1\nnetwork: {RING}\nweeks: 0.2\n"
                   "segments: [hefei, shanghai]\n")
    run = twin.run(doc)
    twin.write_report(run, tmp_path / "a")
    twin.write_report(run, tmp_path / "b")
    frames = twin.diff(tmp_path / "a", tmp_path / "b")
    segments = frames["segments"]
    assert list(segments["segment"]) == ["Hefei–Shanghai"]
    assert segments["hours_unserved_a"].iloc[0] == pytest.approx(
        total(run.segments[0].service.outages) / HOUR_S, abs=1e-4)
    assert (segments["hours_unserved_change"] == 0).all()


def test_bad_input_names_the_problem() -> None:
    """Weeks of 0, a missing file and a folder that is no report: errors naming each."""
    with pytest.raises(ParameterError, match="weeks"):
        twin.run(RING, weeks=0)
    with pytest.raises(ScenarioError, match=r"no-such\.yaml"):
        twin.run("no-such.yaml")
    with pytest.raises(ParameterError, match=r"summary\.json"):
        twin.read_report(Path(__file__).parent)
