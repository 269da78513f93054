"""The folder a sweep writes (``qkdnet twin sweep --out DIR``).

- ``runs.parquet``: every row of the sweep (:mod:`qkdnet.twin.sweep`), failed runs included;
- ``availability.parquet``: the statistics (:mod:`qkdnet.twin.availability_stats`);
- ``hours_unserved.png``: per segment, the distribution of hours unserved per run, with the
  paper's Table 1 value drawn for cn-qcn; ``skr.png``: per segment, the mean SKR per run;
- ``report.md``: the tables and the figures, and the failed runs with their errors.

Parquet is written with pandas' pyarrow engine, without the index: the same runs give the
same bytes.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from qkdnet.twin.availability_stats import TARGETS, availability_table, target_tag

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["write_sweep_report"]


def write_sweep_report(runs: pd.DataFrame, folder: Path) -> Path:
    """Write the sweep's folder (see the module docstring); returns ``report.md``."""
    folder.mkdir(parents=True, exist_ok=True)
    runs.to_parquet(folder / "runs.parquet", index=False)
    stats = availability_table(runs)
    stats.to_parquet(folder / "availability.parquet", index=False)
    figures = [_distribution(runs, stats, folder / "hours_unserved.png", "hours_unserved",
                             "hours unserved per run"),
               _distribution(runs, stats, folder / "skr.png", "mean_skr_kbps",
                             "mean end-to-end SKR per run (kbit/s)")]
    page = folder / "report.md"
    page.write_text(_markdown(runs, stats, [f for f in figures if f is not None]),
                    encoding="utf-8")
    return page


def _distribution(runs: pd.DataFrame, stats: pd.DataFrame, path: Path, column: str,
                  label: str) -> str | None:
    seg = runs[runs["kind"] == "segment"]
    names = list(dict.fromkeys(seg["name"]))
    if not names:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(names), figsize=(3.2 * len(names), 3.0), dpi=110,
                             squeeze=False)
    for ax, name in zip(axes[0], names, strict=True):
        for variant, g in seg[seg["name"] == name].groupby("variant", sort=False):
            ax.hist(g[column].to_numpy(dtype=float), bins=20, alpha=0.6, label=str(variant))
        paper = stats.loc[stats["name"] == name, "paper_hours"]
        if column == "hours_unserved" and len(paper) and paper.notna().iloc[0]:
            ax.axvline(float(paper.iloc[0]), color="red", ls="--", lw=1.5,
                       label=f"paper, Table 1 ({float(paper.iloc[0]):g} h)")
        ax.set_title(name, fontsize=9)
        ax.set_xlabel(label, fontsize=8)
        ax.legend(fontsize=7)
    axes[0][0].set_ylabel("runs")
    fig.tight_layout()
    fig.savefig(path, metadata={"Software": None})
    plt.close(fig)
    return path.name


def _markdown(runs: pd.DataFrame, stats: pd.DataFrame, figures: list[str]) -> str:
    ok = runs[runs["kind"] != "failed"]
    failed = runs[runs["kind"] == "failed"]
    seeds = sorted(set(runs["seed"])) or [0]
    weeks = float(runs["duration_h"].iloc[0]) / 168.0 if len(runs) else 0.0
    lines = [f"# Twin sweep: {runs['network'].iloc[0] if len(runs) else '?'}", "",
             f"{len(set(runs['seed']))} seeds ({seeds[0]}–{seeds[-1]}), {weeks:g} weeks a run, "
             f"variants: {', '.join(dict.fromkeys(runs['variant']))}; "
             f"{ok.groupby(['variant', 'seed']).ngroups} runs succeeded, "
             f"{len(failed)} failed.", "",
             "Hours unserved per run; P(≥ target): share of runs whose availability meets "
             "the target, with its 95 % Clopper–Pearson interval. `paper`: Table 1 "
             "(ten weeks).", ""]
    for kind in ("network", "segment", "service"):
        part = stats[stats["kind"] == kind] if len(stats) else stats
        if not len(part):
            continue
        head = ["variant", kind, "runs", "mean h", "median h", "p5 h", "p95 h"]
        head += [f"P(≥{t * 100:g} %)" for t in TARGETS]
        head += ["mean SKR kbit/s", "paper h"] if kind != "service" else ["served"]
        title = {"network": "Network (per QKD-link: hours down)", "segment": "Segments",
                 "service": "Services"}[kind]
        lines += [f"## {title}", "", "| " + " | ".join(head) + " |",
                  "|" + "---|" * len(head)]
        for r in part.to_dict("records"):
            cells = [r["variant"], r["name"], r["runs"], *(_n(r[k]) for k in (
                "hours_mean", "hours_median", "hours_p5", "hours_p95"))]
            cells += [_share(r, f"p_meet_{target_tag(t)}") for t in TARGETS]
            cells += ([_n(r["skr_mean_kbps"]), _n(r["paper_hours"])] if kind != "service"
                      else [_n(r["served_fraction_mean"])])
            lines.append("| " + " | ".join(str(c) for c in cells) + " |")
        lines.append("")
    lines += [f"![{f}]({f})" for f in figures]
    if len(failed):
        lines += ["", "## Failed runs", "", "| variant | seed | error |", "|---|---|---|"]
        lines += [f"| {r['variant']} | {r['seed']} | {r['error']} |"
                  for r in failed.to_dict("records")]
    return "\n".join(lines) + "\n"


def _share(row: dict[Any, Any], key: str) -> str:
    return f"{row[key]:.3f} [{row[key + '_low']:.3f}, {row[key + '_high']:.3f}]"


def _n(x: Any) -> str:
    return "–" if x != x else f"{float(x):.3g}"  # NaN: no value
