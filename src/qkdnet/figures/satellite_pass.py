"""One satellite pass drawn: the elevation (deg) and the instantaneous asymptotic secure
key rate (bit/s) against time, with the pass's finite-key total in the title; PNG plus the
CSV behind it. The numbers are :func:`qkdnet.quantum.passes.pass_tracks`."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from qkdnet.quantum.decoy_bb84 import decoy_bb84_skr
from qkdnet.quantum.free_space import SATELLITE_BB84
from qkdnet.quantum.passes import PassTrack


def pass_rows(track: PassTrack) -> list[dict[str, float]]:
    """Per sample: time from rise (s), elevation (deg), range (km), loss (dB), sun
    elevation (deg) and the asymptotic key rate there (bit/s; 0 in daylight)."""
    skr = decoy_bb84_skr(track.loss_db, SATELLITE_BB84) * track.night
    t0 = float(track.t_s[0])
    return [{"t_s": round(float(t) - t0, 3), "elevation_deg": float(e), "range_km": float(r),
             "loss_db": float(lo), "sun_elevation_deg": float(s), "skr_bps": float(k)}
            for t, e, r, lo, s, k in zip(track.t_s, track.elevation_deg, track.range_km,
                                         track.loss_db, track.sun_elevation_deg, skr,
                                         strict=True)]


def write_pass_figure(track: PassTrack, folder: Path, when: str) -> list[Path]:
    """Write pass_<station>.png and .csv into ``folder``; ``when`` labels the rise (UTC)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    rows = pass_rows(track)
    stem = folder / f"pass_{track.station}"
    csv_path = stem.with_suffix(".csv")
    with csv_path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    t = np.array([r["t_s"] for r in rows])
    fig, ax = plt.subplots(figsize=(8, 5), dpi=150)
    ax.plot(t, [r["skr_bps"] / 1e3 for r in rows], color="#1f77b4", lw=2,
            label="secure key rate (asymptotic)")
    ax.set_xlabel("time from rise (s)")
    ax.set_ylabel("secure key rate (kbit/s)")
    right = ax.twinx()
    right.plot(t, [r["elevation_deg"] for r in rows], color="#d62728", lw=1.5, ls="--",
               label="elevation")
    right.set_ylabel("elevation (deg)")
    right.set_ylim(0, 90)
    ax.set_title(f"{track.satellite} over {track.station}, rise {when}: "
                 f"{track.key_bits / 1e3:.0f} kbit (finite key, one block)")
    lines = ax.get_legend_handles_labels()[0] + right.get_legend_handles_labels()[0]
    ax.legend(lines, [str(h.get_label()) for h in lines], fontsize=8, loc="upper left")
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    png_path = stem.with_suffix(".png")
    fig.savefig(png_path)
    plt.close(fig)
    return [png_path, csv_path]
