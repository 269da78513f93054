"""A twin run's recording in its report folder: written and read back with the run's
network, telemetry and alarms; a folder without it is refused, naming what is missing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from qkdnet.errors import ParameterError
from qkdnet.files.recording import NETWORK_FILE, TELEMETRY_FILE, load_recording, save_recording
from qkdnet.twin.engine import TwinResult, run_twin
from qkdnet.twin.scenario import built_in_scenario


@pytest.fixture(scope="module")
def result() -> TwinResult:
    return run_twin(built_in_scenario(0.1, 2))


def test_a_saved_recording_reads_back_as_the_run(result: TwinResult, tmp_path: Path) -> None:
    """Network, hourly samples and every alarm of the run come back from the folder."""
    save_recording(result.recording(), tmp_path)
    rec = load_recording(tmp_path)
    assert rec.network.name == result.scenario.network.name
    assert rec.ids == result.link_ids
    np.testing.assert_array_equal(rec.t, result.telemetry_t)
    np.testing.assert_array_equal(rec.up, result.telemetry_up)
    assert rec.alarms == result.alarms and len(rec.alarms) > 0


@pytest.mark.parametrize("missing", [TELEMETRY_FILE, NETWORK_FILE])
def test_a_folder_without_the_recording_is_refused(result: TwinResult, tmp_path: Path,
                                                   missing: str) -> None:
    """The error names the missing file and how to make one."""
    save_recording(result.recording(), tmp_path)
    (tmp_path / missing).unlink()
    with pytest.raises(ParameterError, match=f"{missing}.*qkdnet twin"):
        load_recording(tmp_path)


def test_a_damaged_telemetry_file_is_refused(result: TwinResult, tmp_path: Path) -> None:
    """A telemetry file that is not one is named in the error."""
    save_recording(result.recording(), tmp_path)
    (tmp_path / TELEMETRY_FILE).write_bytes(b"PK\x03\x04 damaged")
    with pytest.raises(ParameterError, match=f"REPORT_DIR.*{TELEMETRY_FILE}"):
        load_recording(tmp_path)
