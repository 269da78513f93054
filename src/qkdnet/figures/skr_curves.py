"""The paper's Fig. 3 (backbone types I–IV) and Fig. 4 (metro types V–VII): secure key
rate against channel loss, ideal calibration as a curve, the field spread as a band below
it, and the PLOB bound for reference; PNG plus the CSV behind each figure. The numbers are
:func:`qkdnet.quantum.curves.skr_curves`."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from qkdnet.quantum.curves import skr_curves
from qkdnet.quantum.devices import BACKBONE_DEVICE_TYPES, METRO_DEVICE_TYPES, device_type
from qkdnet.topology.cn_qcn import BACKBONE_MEAN_LOSS_DB

_COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd")


def _plot(rows: list[dict[str, float | str]], types: Sequence[str], title: str,
          png: Path, mark_loss: float | None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5.5), dpi=150)
    rates_drawn: set[float] = set()
    for name, colour in zip(types, _COLOURS, strict=False):
        mine = [r for r in rows if r["type"] == name]
        x = np.array([r["loss_db"] for r in mine], dtype=float)
        ideal = np.array([r["skr_ideal_bps"] for r in mine], dtype=float)
        worst = np.array([r["skr_field_worst_bps"] for r in mine], dtype=float)
        keyed = ideal > 0
        ax.plot(x[keyed], ideal[keyed], color=colour, lw=2, label=f"type {name} (ideal)")
        ax.fill_between(x, np.where(worst > 0, worst, np.nan), np.where(keyed, ideal, np.nan),
                        color=colour, alpha=0.18, lw=0, label=f"type {name} field spread")
        rate = device_type(name).rep_rate_hz
        if rate not in rates_drawn:
            rates_drawn.add(rate)
            bound = np.array([r["plob_bps"] for r in mine], dtype=float)
            ax.plot(x[1:], bound[1:], color="0.45", ls="--", lw=1,
                    label="PLOB bound" if len(rates_drawn) == 1 else None)
            # label each bound at its right end: several share one line style
            ax.annotate(f"PLOB, {rate / 1e6:g} MHz", (x[-1], bound[-1]), xytext=(-4, 7),
                        textcoords="offset points", ha="right", fontsize=7, color="0.35")
    cv = [device_type(n).params for n in types if device_type(n).is_cv]
    if cv:
        # the CV curves end where the noise at Bob's side, referred to the input, has grown
        # too large: name the convention so a reader can compare with other models
        xi_bob = sorted({float(np.max(p.xi_bob)) for p in cv})  # type: ignore[union-attr]
        ax.text(0.01, 0.02, "CV excess noise: xi (channel input) + xi_Bob / T, xi_Bob = "
                + ", ".join(f"{x:g}" for x in xi_bob) + " SNU at Bob's side",
                transform=ax.transAxes, fontsize=7, color="0.3")
    if mark_loss is not None:
        ax.axvline(mark_loss, color="0.3", ls=":", lw=1)
        ax.text(mark_loss + 0.3, 2e1, f"backbone mean\n{mark_loss} dB", fontsize=8, color="0.3")
    ax.set_yscale("log")
    ax.set_ylim(1e1, 1e10)
    ax.set_xlim(0, float(rows[-1]["loss_db"]))
    ax.set_xlabel("channel loss (dB)")
    ax.set_ylabel("secure key rate (bit/s)")
    ax.set_title(title)
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=7, ncol=2, loc="upper right")
    fig.tight_layout()
    fig.savefig(png)
    plt.close(fig)


def write_skr_figures(folder: Path) -> list[Path]:
    """Write fig3_backbone.{png,csv} and fig4_metro.{png,csv} into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for stem, types, losses, title, mark in (
        ("fig3_backbone", BACKBONE_DEVICE_TYPES, np.arange(0.0, 40.01, 0.25),
         "Backbone QKD devices (types I–IV)", BACKBONE_MEAN_LOSS_DB),
        ("fig4_metro", METRO_DEVICE_TYPES, np.arange(0.0, 30.01, 0.25),
         "Metro QKD devices (types V–VII)", None),
    ):
        rows = skr_curves(types, losses)
        csv_path = folder / f"{stem}.csv"
        with csv_path.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        png_path = folder / f"{stem}.png"
        _plot(rows, types, title, png_path, mark)
        written += [png_path, csv_path]
    return written
