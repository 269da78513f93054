"""The digital twin: simulated-time driver, scenarios and reports, and its Python API.

For planners, in a notebook or a script (docs/twin-api.md)::

    from qkdnet import twin

    result = twin.run("examples/twin-whatif-no-ring.yaml", weeks=1)
    t = twin.frames(result)                  # every table of the run, as DataFrames
    t["segments"][["segment", "mean_skr_kbps", "hours_unserved"]]
    twin.write_report(result, "whatif", fmt="parquet")
    base = twin.read_report("twin-report")   # the tables of a report folder, back
    twin.diff("twin-report", "whatif")       # baseline and what-if side by side

Units are in the column names (``_bits``, ``_kbps``, ``hours_``); pandas is imported only
by :func:`frames` and :func:`read_report`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from qkdnet.errors import ParameterError
from qkdnet.twin.diff import diff as _diff
from qkdnet.twin.engine import Progress, TwinResult, run_twin
from qkdnet.twin.report import TableFormat, summary
from qkdnet.twin.report import write_report as _write_report
from qkdnet.twin.scenario import TwinScenario, built_in_scenario, load_twin_scenario
from qkdnet.twin.tables import Rows, tables

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["TwinResult", "TwinScenario", "diff", "frames", "read_report", "run", "scenario",
           "summary", "tables", "write_report"]


def scenario(source: str | Path | None = None, weeks: float | None = None,
             seed: int | None = None) -> TwinScenario:
    """The scenario of a twin file (``qkdnet_twin: 1``) or a network's scenario file
    (``qkdnet_scenario: 1``, run with every default); None: the built-in cn-qcn run.
    ``weeks`` and ``seed`` replace the file's. Bad input is a ScenarioError naming the
    file, the line and the field."""
    if weeks is not None and not weeks > 0:
        raise ParameterError("weeks", weeks, "must be > 0")
    if source is None:
        return built_in_scenario(10.0 if weeks is None else weeks, 1 if seed is None else seed)
    return load_twin_scenario(Path(source), weeks, seed)


def run(source: str | Path | TwinScenario | None = None, weeks: float | None = None,
        seed: int | None = None, progress: Progress | None = None) -> TwinResult:
    """Run the twin on a scenario (a :class:`TwinScenario`, or a file or None as for
    :func:`scenario`); ``progress(done_s, total_s)`` is called after each simulated day."""
    sc = source if isinstance(source, TwinScenario) else scenario(source, weeks, seed)
    return run_twin(sc, progress)


def frames(result: TwinResult) -> dict[str, pd.DataFrame]:
    """Every table of ``result`` (:func:`~qkdnet.twin.tables.tables`) as a DataFrame, by
    name: ``segments``, ``services``, ``links``, ``km_links``, ``pools``, ``alarms``, ...;
    the same rows the report writes to its files."""
    return {name: _frame(rows) for name, rows in tables(result).items()}


def write_report(result: TwinResult, folder: str | Path, fmt: TableFormat = "csv") -> Path:
    """Write the report folder of ``result`` (tables as ``csv`` or ``parquet``); returns
    its index.html."""
    return _write_report(result, Path(folder), fmt)


def read_report(folder: str | Path) -> dict[str, pd.DataFrame]:
    """The tables of a report folder (``*.csv`` or ``*.parquet``) as DataFrames, by name
    (a table with no rows, written as an empty CSV, is an empty DataFrame)."""
    import pandas as pd

    folder = Path(folder)
    if not (folder / "summary.json").is_file():
        raise ParameterError("REPORT_DIR", str(folder), "a twin report folder with "
                             "summary.json; run `qkdnet twin --out DIR` first")
    out: dict[str, pd.DataFrame] = {}
    for path in sorted(folder.glob("*.parquet")):
        out[path.stem] = pd.read_parquet(path)
    for path in sorted(folder.glob("*.csv")):
        out[path.stem] = pd.read_csv(path) if path.stat().st_size else pd.DataFrame()
    return out


def diff(a: str | Path, b: str | Path) -> dict[str, pd.DataFrame]:
    """Report folders ``a`` (baseline) and ``b`` (what-if) side by side
    (:func:`qkdnet.twin.diff.diff`): ``segments``, ``services`` and ``totals``."""
    return {name: _frame(rows) for name, rows in _diff(Path(a), Path(b)).items()}


def _frame(rows: Rows) -> pd.DataFrame:
    import pandas as pd

    return pd.DataFrame.from_records(rows)
