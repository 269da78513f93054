"""``qkdnet skr``, ``qkdnet reach``, ``qkdnet devices``: the quantum layer's device types
and key-rate models on the command line."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import numpy as np
import numpy.typing as npt
import typer
from rich.console import Console

from qkdnet.cli.guard import guard, writable_folder
from qkdnet.cli.options import FormatOption
from qkdnet.cli.output import Row, output_format, render, with_si_prefix
from qkdnet.errors import ParameterError
from qkdnet.quantum.devices import device_types
from qkdnet.quantum.finite_key import DEFAULT_EPSILON
from qkdnet.quantum.rates import plob, skr
from qkdnet.quantum.reach import loss_at_rate, max_tolerable_loss
from qkdnet.quantum.selection import check_block_size, select_devices

commands = typer.Typer()

TypeOption = Annotated[
    str, typer.Option("--type", "-t", help="Device type(s): I..VII, comma-separated, or all.")
]
FieldOption = Annotated[
    bool, typer.Option("--field", help="Pessimistic field values (e_d 2%, 1000 Hz, f_EC 2; "
                       "CV: xi 0.05, beta 0.90) instead of the ideal calibration.")
]
SetOption = Annotated[
    list[str] | None, typer.Option("--set", help="Override a parameter, e.g. --set mu=0.6 "
                                   "(repeatable; see `qkdnet devices --params`).")
]
BlockOption = Annotated[
    float | None, typer.Option("--block-size", help="Finite-key block: sifted bits (DV) or "
                               "symbols (CV). Omit for asymptotic rates.")
]
EpsilonOption = Annotated[
    float, typer.Option("--epsilon", help="Security parameter of the finite-key rates.")
]


def parse_losses(spec: str) -> npt.NDArray[np.float64]:
    """Losses in dB from ``18.61``, ``0,5,10`` or a range ``start:stop[:step]`` (stop
    included, step 1 dB by default)."""
    return _parse_values("--loss", spec, "dB", "18.6, 0,5,10 or 0:40:2", "channel loss")


def parse_lengths(spec: str) -> npt.NDArray[np.float64]:
    """Fibre lengths in km, written as :func:`parse_losses` takes losses (step 1 km)."""
    return _parse_values("--km", spec, "km", "100, 50,100 or 0:200:10", "fibre length")


def _parse_values(option: str, spec: str, unit: str, examples: str,
                  what: str) -> npt.NDArray[np.float64]:
    try:
        if ":" in spec:
            parts = [float(x) for x in spec.split(":")]
            if len(parts) not in (2, 3) or (len(parts) == 3 and parts[2] <= 0):
                raise ParameterError(option, spec, "a range is start:stop[:step] with step > 0")
            start, stop, step = (*parts, 1.0) if len(parts) == 2 else parts
            if stop < start:
                raise ParameterError(option, spec, "range stop must be >= start")
            values = np.arange(start, stop + step / 2, step)
        else:
            values = np.array([float(x) for x in spec.split(",")])
    except ValueError:
        raise ParameterError(option, spec, f"must be numbers in {unit}: {examples}") from None
    bad = ~(values >= 0)
    if bad.any():
        raise ParameterError(option, float(values[bad][0]), f"{what} must be >= 0 {unit}")
    return values


def channel_losses(loss: str | None, km: str | None, db_per_km: float | None
                   ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64] | None]:
    """The losses (dB) of ``skr``: from ``--loss`` (default 0:40:2), or from ``--km`` fibre
    lengths at ``--db-per-km`` (default 0.2 dB/km, the scenario files' default), with the
    lengths (km); the two are alternatives."""
    from qkdnet.quantum.channel import fibre_loss_db
    from qkdnet.topology.scenario_file import DEFAULT_ATTENUATION_DB_PER_KM

    if km is None:
        if db_per_km is not None:
            raise ParameterError("--db-per-km", db_per_km, "goes with --km (fibre lengths)")
        return parse_losses("0:40:2" if loss is None else loss), None
    if loss is not None:
        raise ParameterError("--km", km, "an alternative to --loss: give one of them")
    attenuation = DEFAULT_ATTENUATION_DB_PER_KM if db_per_km is None else db_per_km
    if not 0 < attenuation < 10:
        raise ParameterError("--db-per-km", attenuation, "fibre attenuation in dB/km, "
                             "> 0 and < 10 (0.2: standard fibre at 1550 nm)")
    lengths = parse_lengths(km)
    return fibre_loss_db(lengths, attenuation), lengths


def _cell(column: str, value: Any) -> str:
    if column.endswith("_bps"):
        return with_si_prefix(float(value), "bit/s")
    if column.endswith("_hz"):
        return with_si_prefix(float(value), "Hz")
    if isinstance(value, float):
        return f"{value:.2f}" if column.endswith("_db") else f"{value:g}"
    return str(value)


@commands.command("skr")
def skr_command(
    type_spec: TypeOption = "all",
    loss: Annotated[str | None, typer.Option(help="Channel loss in dB: 18.61, 0,5,10 or "
                                             "0:40:2 (default 0:40:2).")] = None,
    km: Annotated[str | None, typer.Option(help="Instead of --loss: fibre lengths in km "
                                           "(100, 50,100 or 0:200:10) at --db-per-km.")
                  ] = None,
    db_per_km: Annotated[float | None, typer.Option(help="Fibre attenuation (dB/km) of --km "
                                                    "[default: 0.2].")] = None,
    block_size: BlockOption = None,
    epsilon: EpsilonOption = DEFAULT_EPSILON,
    field: FieldOption = False,
    set_: SetOption = None,
    fmt: FormatOption = "table",
    plot: Annotated[Path | None, typer.Option(help="Write the paper's Fig. 3 and Fig. 4 "
                                              "(PNG + CSV) into this folder; they always "
                                              "show every type, ideal and field.")] = None,
) -> None:
    """Secure key rate of the device types against channel loss, with the PLOB bound."""
    console = Console(soft_wrap=True)
    if plot is not None:
        from qkdnet.figures.skr_curves import write_skr_figures

        for path in guard(lambda: write_skr_figures(writable_folder("--plot", plot))):
            console.print(str(path))
        return

    def rows() -> None:
        out_format = output_format(fmt)
        losses, lengths = channel_losses(loss, km, db_per_km)
        result: list[Row] = []
        for device, params in select_devices(type_spec, field, set_ or []):
            check_block_size(device, params, block_size, epsilon)
            rates = skr(device, losses, params, block_size, epsilon)
            bound = plob(device, losses, params)
            extra = skr(device, losses, params) if block_size is not None else None
            for i, value in enumerate(losses):
                row: dict[str, Any] = {
                    "type": device.name,
                    **({} if lengths is None else {"length_km": float(lengths[i])}),
                    "loss_db": round(float(value), 6),
                    "skr_bps": float(rates[i]), "plob_bps": float(bound[i]),
                }
                if extra is not None:
                    row |= {"block_size": block_size, "asymptotic_skr_bps": float(extra[i])}
                result.append(row)
        render(result, out_format, console, _cell)

    guard(rows)


@commands.command("reach")
def reach_command(
    type_spec: TypeOption = "all",
    target_skr: Annotated[float | None, typer.Option(
        "--target-skr", help="Also give the loss (dB) at which each type still delivers "
        "this rate (bit/s).")] = None,
    block_size: BlockOption = None,
    epsilon: EpsilonOption = DEFAULT_EPSILON,
    field: FieldOption = False,
    set_: SetOption = None,
    fmt: FormatOption = "table",
) -> None:
    """Maximum tolerable channel loss of each type (and the loss at a target rate)."""
    console = Console(soft_wrap=True)

    def rows() -> None:
        out_format = output_format(fmt)
        if target_skr is not None and not target_skr >= 0:
            raise ParameterError("--target-skr", target_skr, "must be >= 0 bit/s")
        result: list[Row] = []
        for device, params in select_devices(type_spec, field, set_ or []):
            check_block_size(device, params, block_size, epsilon)
            row: dict[str, Any] = {
                "type": device.name,
                "max_loss_db": float(max_tolerable_loss(device, params, block_size, epsilon)),
            }
            if target_skr is not None:
                at = loss_at_rate(device, target_skr, params, block_size, epsilon)
                row |= {"target_skr_bps": target_skr,
                        "loss_at_target_db": None if np.isnan(at) else float(at)}
            result.append(row)
        render(result, out_format, console, _cell)

    guard(rows)


@commands.command("devices")
def devices_command(
    fmt: FormatOption = "table",
    params: Annotated[bool, typer.Option("--params", help="List every parameter with its "
                                         "default and meaning.")] = False,
) -> None:
    """The seven CN-QCN device types and their default calibration."""
    console = Console(soft_wrap=True)

    def rows() -> None:
        out_format = output_format(fmt)
        result: list[Row] = []
        for device in device_types(["all"]):
            if params:
                docs = device.params.docs()
                result.extend(
                    {"type": device.name, "parameter": name,
                     "value": getattr(device.params, name), "meaning": docs[name]}
                    for name in device.params.names()
                )
            else:
                result.append({
                    "type": device.name, "domain": device.domain, "protocol": device.protocol,
                    "encoding": device.encoding, "detector": device.detector,
                    "rep_rate_hz": device.rep_rate_hz,
                })
        render(result, out_format, console, _cell)

    guard(rows)
