"""``qkdnet skr``, ``qkdnet reach``, ``qkdnet devices``: the quantum layer's device types
and key-rate models on the command line."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import numpy as np
import numpy.typing as npt
import typer
from rich.console import Console

from qkdnet.cli.guard import guard
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
    try:
        if ":" in spec:
            parts = [float(x) for x in spec.split(":")]
            if len(parts) not in (2, 3) or (len(parts) == 3 and parts[2] <= 0):
                raise ParameterError("--loss", spec, "a range is start:stop[:step] with step > 0")
            start, stop, step = (*parts, 1.0) if len(parts) == 2 else parts
            if stop < start:
                raise ParameterError("--loss", spec, "range stop must be >= start")
            values = np.arange(start, stop + step / 2, step)
        else:
            values = np.array([float(x) for x in spec.split(",")])
    except ValueError:
        raise ParameterError(
            "--loss", spec, "must be numbers in dB: 18.6, 0,5,10 or 0:40:2"
        ) from None
    bad = ~(values >= 0)
    if bad.any():
        raise ParameterError("--loss", float(values[bad][0]), "channel loss must be >= 0 dB")
    return values


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
    loss: Annotated[str, typer.Option(help="Channel loss in dB: 18.61, 0,5,10 or 0:40:2.")]
    = "0:40:2",
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

        for path in guard(lambda: write_skr_figures(plot)):
            console.print(str(path))
        return

    def rows() -> None:
        out_format = output_format(fmt)
        losses = parse_losses(loss)
        result: list[Row] = []
        for device, params in select_devices(type_spec, field, set_ or []):
            check_block_size(device, params, block_size, epsilon)
            rates = skr(device, losses, params, block_size, epsilon)
            bound = plob(device, losses, params)
            extra = skr(device, losses, params) if block_size is not None else None
            for i, value in enumerate(losses):
                row: dict[str, Any] = {
                    "type": device.name, "loss_db": round(float(value), 6),
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
