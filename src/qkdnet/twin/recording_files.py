"""A twin run's recording in its report folder, the files ``qkdnet console`` replays: the
format of :mod:`qkdnet.management.recording`, written and read here and nowhere else."""

from __future__ import annotations

from pathlib import Path

from qkdnet.errors import ParameterError
from qkdnet.files.networks import load_network, save_network
from qkdnet.management.recording import (
    NETWORK_FILE,
    TELEMETRY_FILE,
    Recording,
    decode_telemetry,
    encode_telemetry,
)
from qkdnet.twin.engine import TwinResult


def recording_of(result: TwinResult) -> Recording:
    """The run's network, hourly link telemetry and every alarm its NMS raised."""
    return Recording(result.scenario.network, result.link_ids, result.telemetry_t,
                     result.telemetry_skr_bps.astype(float),
                     result.telemetry_qber.astype(float), result.telemetry_up, result.alarms)


def save_recording(result: TwinResult, folder: Path) -> None:
    """Write the recording of ``result`` into ``folder`` (which must exist)."""
    (folder / TELEMETRY_FILE).write_bytes(encode_telemetry(recording_of(result)))
    save_network(result.scenario.network, folder / NETWORK_FILE)


def load_recording(folder: Path) -> Recording:
    """Read the recording in a twin report folder; a missing or unreadable file is a
    ParameterError naming it."""
    for name in (NETWORK_FILE, TELEMETRY_FILE):
        if not (folder / name).is_file():
            raise ParameterError("REPORT_DIR", str(folder),
                                 f"a twin report folder with {name} (missing: "
                                 f"{folder / name}); run `qkdnet twin --out DIR` first")
    network = load_network(folder / NETWORK_FILE)
    try:
        return decode_telemetry((folder / TELEMETRY_FILE).read_bytes(), network)
    except OSError as exc:
        raise ParameterError("REPORT_DIR", str(folder),
                             f"{TELEMETRY_FILE} cannot be read ({exc.strerror})") from exc
    except ParameterError as exc:
        raise ParameterError("REPORT_DIR", str(folder),
                             f"{TELEMETRY_FILE}: {exc.value} is not {exc.allowed}") from exc
