"""Fig. 3 and Fig. 4 written as PNG with the CSV behind each."""

from __future__ import annotations

import csv
from pathlib import Path

import matplotlib.image
import numpy as np

from qkdnet.figures.skr_curves import write_skr_figures
from qkdnet.quantum.curves import skr_curves
from qkdnet.quantum.devices import BACKBONE_DEVICE_TYPES, METRO_DEVICE_TYPES


def test_both_figures_and_their_data_are_written(tmp_path: Path) -> None:
    """Two PNGs of 8 x 5.5 in at 150 dpi, each beside a CSV of the curves it draws."""
    written = write_skr_figures(tmp_path / "figs")
    assert sorted(p.name for p in written) == [
        "fig3_backbone.csv", "fig3_backbone.png", "fig4_metro.csv", "fig4_metro.png"]
    for stem, types, top in (("fig3_backbone", BACKBONE_DEVICE_TYPES, 40.0),
                             ("fig4_metro", METRO_DEVICE_TYPES, 30.0)):
        image = matplotlib.image.imread(tmp_path / "figs" / f"{stem}.png")
        assert image.shape[:2] == (825, 1200)
        assert len(np.unique(image[..., :3].reshape(-1, 3), axis=0)) > 20
        with (tmp_path / "figs" / f"{stem}.csv").open(newline="") as handle:
            rows = list(csv.DictReader(handle))
        expected = skr_curves(types, np.arange(0.0, top + 0.01, 0.25))
        assert [(r["type"], float(r["loss_db"])) for r in rows] == [
            (e["type"], e["loss_db"]) for e in expected]
        assert [float(r["skr_ideal_bps"]) for r in rows] == [e["skr_ideal_bps"] for e in expected]
