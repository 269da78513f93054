"""The ``qkdnet`` command line: one entry point, a sub-command per job.

Errors a user can fix (a bad value, an unknown type) print one line naming the parameter
and its allowed range, and exit with code 2.
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated, Any, TypeVar

import numpy as np
import typer
from rich.console import Console

from qkdnet.errors import ParameterError, QkdnetError
from qkdnet.output import Row, output_format, render, with_si_prefix
from qkdnet.quantum.devices import DeviceType, device_types
from qkdnet.quantum.field import pessimistic_params
from qkdnet.quantum.finite_key import DEFAULT_EPSILON
from qkdnet.quantum.params import ProtocolParams
from qkdnet.quantum.rates import plob, skr
from qkdnet.quantum.reach import loss_at_rate, max_tolerable_loss, minimum_block_size

app = typer.Typer(
    help="qkdnet: a carrier-grade quantum key distribution network.",
    no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
)
topology_app = typer.Typer(help="The network as data: summary, exports, map, generator.",
                           no_args_is_help=True)
app.add_typer(topology_app, name="topology")
pki_app = typer.Typer(help="Certificates for trying the KMEs: a CA, KME and SAE certificates.",
                      no_args_is_help=True)
app.add_typer(pki_app, name="pki")
_T = TypeVar("_T")

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
FormatOption = Annotated[str, typer.Option("--format", "-f", help="table, csv or json.")]
ScenarioOption = Annotated[
    str, typer.Option("--scenario", "-s", help="Built-in scenario name (cn-qcn) or a "
                      "scenario file (YAML/JSON).")
]


def _fail(message: str) -> None:
    print(f"qkdnet: error: {message}", file=sys.stderr)
    raise typer.Exit(code=2)


def _guard(job: Callable[[], _T]) -> _T:
    """Run ``job``; a user's mistake becomes one line on stderr and exit code 2."""
    try:
        return job()
    except QkdnetError as exc:
        _fail(str(exc))
        raise  # unreachable: _fail exits


def parse_losses(spec: str) -> np.ndarray:
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


def parse_overrides(settings: Sequence[str], devices: Sequence[DeviceType]
                    ) -> dict[str, dict[str, Any]]:
    """``name=value`` settings split per device type; a name must belong to at least one of
    the selected types (it is applied to those that have it)."""
    per_device: dict[str, dict[str, Any]] = {d.name: {} for d in devices}
    for setting in settings:
        name, sep, raw = setting.partition("=")
        name = name.strip()
        if not sep or not name:
            raise ParameterError("--set", setting, "expected name=value, e.g. mu=0.6")
        takers = [d for d in devices if name in d.params.names()]
        if not takers:
            known = sorted({n for d in devices for n in d.params.names()})
            raise ParameterError("--set", setting, "unknown parameter; known: " + ", ".join(known))
        value: Any = raw.strip()
        if name != "detection":
            try:
                value = float(value)
            except ValueError:
                raise ParameterError(name, raw, "must be a number") from None
        for d in takers:
            per_device[d.name][name] = value
    return per_device


def _selected(type_spec: str, field: bool, settings: Sequence[str] | None
              ) -> list[tuple[DeviceType, ProtocolParams]]:
    """Device types with their parameters: calibration, field corner, then overrides."""
    devices = device_types(type_spec.split(","))
    overrides = parse_overrides(settings or [], devices)
    chosen = []
    for d in devices:
        base = pessimistic_params(d) if field else d.params
        chosen.append((d, base.replace(**overrides[d.name])))
    return chosen


def _check_block(device: DeviceType, params: ProtocolParams, block: float | None,
                 epsilon: float) -> None:
    if block is None:
        return
    need = minimum_block_size(device, params, epsilon)
    if block < need:
        unit = "symbols" if device.is_cv else "sifted bits"
        raise ParameterError("--block-size", block,
                             f"too small for any key with type {device.name}: "
                             f"needs at least {need:.3g} {unit}")


def _cell(column: str, value: Any) -> str:
    if column.endswith("_bps"):
        return with_si_prefix(float(value), "bit/s")
    if column.endswith("_hz"):
        return with_si_prefix(float(value), "Hz")
    if isinstance(value, float):
        return f"{value:.2f}" if column.endswith("_db") else f"{value:g}"
    return str(value)


@app.command("skr")
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
        from qkdnet.quantum.figures import write_skr_figures

        for path in _guard(lambda: write_skr_figures(plot)):
            console.print(str(path))
        return

    def rows() -> list[Row]:
        out_format = output_format(fmt)
        losses = parse_losses(loss)
        result: list[Row] = []
        for device, params in _selected(type_spec, field, set_):
            _check_block(device, params, block_size, epsilon)
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
        return result

    _guard(rows)


@app.command("reach")
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
        for device, params in _selected(type_spec, field, set_):
            _check_block(device, params, block_size, epsilon)
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

    _guard(rows)


@app.command("devices")
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

    _guard(rows)


@topology_app.command("summary")
def topology_summary(scenario: ScenarioOption = "cn-qcn", fmt: FormatOption = "table") -> None:
    """Headline figures: nodes, links, fibre km and mean loss per part of the network."""
    from qkdnet.topology.scenarios import open_network
    from qkdnet.topology.summary import summary

    console = Console(soft_wrap=True)

    def show() -> None:
        out_format = output_format(fmt)
        figures = summary(open_network(scenario))
        if out_format == "json":
            console.file.write(json.dumps(figures, indent=2) + "\n")
        else:
            render([{"figure": k, "value": v} for k, v in figures.items()], out_format, console)

    _guard(show)


@topology_app.command("export")
def topology_export(
    output: Annotated[Path, typer.Option("--output", "-o", help="File to write.")],
    fmt: Annotated[str, typer.Option("--format", "-f", help="graphml, geojson, yaml or json.")
                   ] = "graphml",
    scenario: ScenarioOption = "cn-qcn",
) -> None:
    """Write the network as GraphML, GeoJSON or a scenario file (YAML/JSON)."""
    from qkdnet.topology.export import write_geojson, write_graphml
    from qkdnet.topology.scenario_file import save_network
    from qkdnet.topology.scenarios import open_network

    def export() -> None:
        if fmt not in ("graphml", "geojson", "yaml", "json"):
            raise ParameterError("--format", fmt, "must be graphml, geojson, yaml or json")
        network = open_network(scenario)
        if fmt == "graphml":
            write_graphml(network, output)
        elif fmt == "geojson":
            write_geojson(network, output)
        else:
            save_network(network, output.with_suffix(f".{fmt}") if output.suffix not in
                         (".yaml", ".yml", ".json") else output)
        print(output)

    _guard(export)


@topology_app.command("map")
def topology_map(
    output: Annotated[Path, typer.Option("--output", "-o", help="PNG file to write.")],
    scenario: ScenarioOption = "cn-qcn",
) -> None:
    """Draw the network on longitude/latitude like the paper's Fig. 1."""
    from qkdnet.topology.map import draw_map
    from qkdnet.topology.scenarios import open_network

    _guard(lambda: print(draw_map(open_network(scenario), output)))


@topology_app.command("generate")
def topology_generate(
    nodes: Annotated[int, typer.Option("--nodes", "-n", help="How many nodes.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Scenario file to write "
                                         "(.yaml or .json).")],
    seed: Annotated[int, typer.Option("--seed", help="Random seed.")] = 1,
) -> None:
    """A synthetic carrier-like network of any size (backbone chains and rings, metro
    trees), reproducible from the seed, written as a scenario file."""
    from qkdnet.topology.generator import generate_network
    from qkdnet.topology.scenario_file import save_network

    _guard(lambda: print(save_network(generate_network(nodes, seed), output)))


@pki_app.command("init")
def pki_init(
    folder: Annotated[Path, typer.Argument(help="Folder for ca.crt, kme/ and sae/.")],
    scenario: ScenarioOption = "cn-qcn",
    all_nodes: Annotated[bool, typer.Option(help="Certificates for every node's KME, user "
                                            "nodes without SAEs too.")] = False,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing PKI.")] = False,
) -> None:
    """Create a CA and the KME and SAE certificates of a scenario (SAE ID = certificate
    CN and URI SAN sae-id:<id>)."""
    from qkdnet.live.keynet import served_nodes
    from qkdnet.live.pki import init_pki
    from qkdnet.topology.scenarios import open_network

    def make() -> None:
        network = open_network(scenario)
        pki = init_pki(folder, served_nodes(network, all_nodes), [s.id for s in network.saes],
                       overwrite=overwrite)
        print(f"{pki.ca_cert} ({len(pki.kme_ids)} KMEs, {len(pki.sae_ids)} SAEs)")

    _guard(make)


@app.command("twin")
def twin_command(
    weeks: Annotated[float | None, typer.Option(help="Simulated weeks (default 10, or the "
                                                "scenario file's).")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed of faults and drifts (default 1, or "
                                             "the scenario file's).")] = None,
    scenario: Annotated[Path | None, typer.Option(help="Twin scenario file (YAML/JSON); "
                                                  "default: the built-in cn-qcn run.")] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="Report folder.")] = Path(
        "twin-report"),
) -> None:
    """Run the digital twin (default: CN-QCN for 10 weeks) and write its report folder:
    index.html with Fig. 5a/5b, Table 1, availability, pools and Fig. 3/4, plus PNG and CSV."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from qkdnet.twin.engine import run_twin
    from qkdnet.twin.report import summary, write_report
    from qkdnet.twin.scenario import WEEK_S, built_in_scenario, load_twin_scenario

    def run() -> None:
        if weeks is not None and not weeks > 0:
            raise ParameterError("--weeks", weeks, "must be > 0")
        if scenario is None:
            sc = built_in_scenario(10.0 if weeks is None else weeks, 1 if seed is None else seed)
        else:
            sc = load_twin_scenario(scenario, weeks, seed)
        with Progress(TextColumn("[bold]twin[/] {task.description}"), BarColumn(),
                      TextColumn("{task.percentage:>3.0f}%"), TimeElapsedColumn(),
                      console=Console(stderr=True), transient=False) as bar:
            task = bar.add_task(f"{sc.network.name}, {sc.duration_s / WEEK_S:g} weeks",
                                total=sc.duration_s)
            result = run_twin(sc, lambda done, _: bar.update(task, completed=done))
        page = write_report(result, out)
        _print_twin_summary(summary(result))
        print(f"report: {page}")

    _guard(run)


def _print_twin_summary(s: dict[str, Any]) -> None:
    rows: list[Row] = [{"segment": g["name"], "links": g["links"],
                        "mean SKR (kbit/s)": f"{g['mean_skr_kbps']:.2f}",
                        "hours unserved": f"{g['hours_unserved']:.2f}"} for g in s["segments"]]
    if rows:
        render(rows, "table", Console(), title="Segments of the watched path")
    if "watched_link_skr_kbps" in s:
        span = s["watched_link_skr_kbps"]
        print(f"per-link average SKR along the path: {span['min']:.2f} to {span['max']:.1f} "
              "kbit/s")


#: Fault injection actions: what each acts on and the O&M endpoint it calls.
FAULT_ACTIONS = {"cut": "links", "blind": "links", "repair": "links", "stop": "nodes",
                 "start": "nodes"}


@app.command("fault")
def fault_command(
    action: Annotated[str, typer.Argument(help="cut, blind (trip its detector-current "
                                          "monitor) or repair a QKD-link; stop or start a "
                                          "node")],
    target: Annotated[str, typer.Argument(help="QKD-link id (a--b) or node id")],
    folder: Annotated[Path, typer.Option("--dir", "-d", help="Data folder of a running "
                                         "`qkdnet serve` (its manifest.json).")] = Path(
        "qkdnet-live"),
) -> None:
    """Inject a fault into a running `qkdnet serve`, or end it: a cut link makes no key and
    its KM-links report down; a blinded link's detector-current monitor trips and it stops
    distilling; a stopped node's Key Manager and devices go dark (its links
    make no key, its KME answers 503). The controllers route around it and the NMS raises
    its alarms at once; a repair or start clears them."""
    import urllib.error
    import urllib.request

    def run() -> None:
        kind = FAULT_ACTIONS.get(action)
        if kind is None:
            raise ParameterError("ACTION", action, ", ".join(FAULT_ACTIONS))
        manifest = folder / "manifest.json"
        try:
            om_url = json.loads(manifest.read_text())["om_url"]
        except (OSError, ValueError, KeyError) as exc:
            raise ParameterError("--dir", str(folder), f"holds no manifest of a running "
                                 f"`qkdnet serve` with an om_url ({exc})") from exc
        request = urllib.request.Request(f"{om_url}/api/{kind}/{target}/{action}",
                                         method="POST")
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:
                state = json.loads(answer.read())
        except urllib.error.HTTPError as exc:
            raise ParameterError("TARGET", target, json.loads(exc.read()).get("message", "")
                                 ) from exc
        except urllib.error.URLError as exc:
            raise ParameterError("--dir", str(folder), f"its `qkdnet serve` does not answer "
                                 f"at {om_url} ({exc.reason})") from exc
        if kind == "links":
            print(f"{state['link']}: "
                  f"{'up' if state['up'] else 'blinded' if state['blinded'] else 'cut'}")
        else:
            print(f"{state['node']}: {'running' if state['running'] else 'stopped'}")

    _guard(run)


@app.command("serve")
def serve_command(
    folder: Annotated[Path, typer.Option("--dir", "-d", help="Data folder: key stores, PKI, "
                                         "manifest.json.")] = Path("qkdnet-live"),
    scenario: ScenarioOption = "cn-qcn",
    speedup: Annotated[float, typer.Option(help="Make key this many times faster than "
                                           "the modelled rates.")] = 1.0,
    prefill_bits: Annotated[int, typer.Option(help="Key (bits) each KM-link starts with.")
                            ] = 0,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    all_nodes: Annotated[bool, typer.Option(help="A KME on every node, user nodes without "
                                            "SAEs too.")] = False,
    manifest: Annotated[Path | None, typer.Option(help="Where to write the manifest "
                                                  "(default DIR/manifest.json).")] = None,
    pool_capacity_bits: Annotated[int, typer.Option(help="Key each KM-link end holds at "
                                                    "most (bits); full pools stop filling.")
                                  ] = 2**20,
    om_port: Annotated[int, typer.Option(help="Port of the O&M endpoints (/metrics, "
                                         "/api/state; plain HTTP); 0: any free port.")] = 0,
    dynamics: Annotated[bool, typer.Option(help="Link rates follow the day-night drift and "
                                           "bursts of extra QBER (China Standard Time), as "
                                           "in the twin; off: static modelled rates.")
                        ] = True,
    seed: Annotated[int, typer.Option(help="Seed of the link dynamics.")] = 1,
) -> None:
    """Run the KMEs of a scenario on loopback: ETSI GS QKD 014 over mutual TLS, one port and
    one SQLite key store per KME, key emulators filling the pools. Ctrl-C stops."""
    import asyncio
    import signal

    from qkdnet.live.serve import ServeOptions, serve
    from qkdnet.topology.scenarios import open_network

    def run() -> None:
        import logging

        logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                            format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        if not speedup > 0:
            raise ParameterError("--speedup", speedup, "must be > 0")
        if prefill_bits < 0:
            raise ParameterError("--prefill-bits", prefill_bits, "must be >= 0")
        if pool_capacity_bits < 2**13:
            raise ParameterError("--pool-capacity-bits", pool_capacity_bits,
                                 "must be at least 8192 (one key block)")
        network = open_network(scenario)
        if not 0 <= om_port <= 65535:
            raise ParameterError("--om-port", om_port, "a TCP port, 0 to 65535")
        options = ServeOptions(folder, host, speedup, prefill_bits, all_nodes, manifest,
                               pool_capacity_bits, om_port, dynamics, seed)

        def ready(m: dict[str, Any]) -> None:
            print(f"{len(m['kmes'])} KMEs serving; manifest "
                  f"{manifest or folder / 'manifest.json'}", flush=True)

        async def main() -> None:
            task = asyncio.current_task()
            assert task is not None
            asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
            await serve(network, options, ready)

        with contextlib.suppress(KeyboardInterrupt, asyncio.CancelledError):
            asyncio.run(main())

    _guard(run)


@app.command("console")
def console_command(
    report: Annotated[Path, typer.Argument(help="Report folder of `qkdnet twin` (with "
                                           "telemetry.npz and network.json).")],
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port of the console; 0: any free port.")] = 8080,
    speed: Annotated[float, typer.Option(help="Hourly samples replayed per second.")] = 20.0,
    loop: Annotated[bool, typer.Option(help="Start over at the end instead of stopping "
                                       "on the final state.")] = False,
) -> None:
    """Serve the O&M web console over a finished twin run, replaying its hourly telemetry
    (SKR, QBER, link state, alarms) so the page updates live. Ctrl-C stops."""
    import asyncio
    import signal

    from qkdnet.live.om_app import make_om_app
    from qkdnet.live.replay import Replay, load_recording
    from qkdnet.live.tls_server import make_server, serve_many

    def run() -> None:
        if not speed > 0:
            raise ParameterError("--speed", speed, "must be > 0")
        if not 0 <= port <= 65535:
            raise ParameterError("--port", port, "a TCP port, 0 to 65535")
        replay = Replay(load_recording(report))

        async def main() -> None:
            task = asyncio.current_task()
            assert task is not None
            asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
            server = make_server(make_om_app(replay.nms, replay.alarms, replay.updates),
                                 host, port, None)
            player = asyncio.create_task(replay.play(speed, loop))
            print(f"console: http://{host}:{server.port}/ ({replay.recording.samples} "
                  f"samples of {len(replay.recording.ids)} QKD-links at {speed:g}/s)",
                  flush=True)
            try:
                await serve_many([server])
            finally:
                player.cancel()

        with contextlib.suppress(KeyboardInterrupt, asyncio.CancelledError):
            asyncio.run(main())

    _guard(run)
