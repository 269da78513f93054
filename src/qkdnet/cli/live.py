"""``qkdnet serve``, ``qkdnet fault``, ``qkdnet console``: the live network and its O&M."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from qkdnet.cli.guard import fail, free_port, guard, writable_folder
from qkdnet.cli.options import (
    DATA_FOLDER,
    SATELLITE_START,
    SatelliteCloudOption,
    SatellitePoolOption,
    SatellitePrefillOption,
    SatelliteStartOption,
    ScenarioOption,
)

commands = typer.Typer()


@commands.command("serve")
def serve_command(
    folder: Annotated[Path, typer.Option("--dir", "-d", help="Data folder: key stores, PKI, "
                                         "manifest.json.")] = DATA_FOLDER,
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
    idle_timeout: Annotated[int, typer.Option(help="Seconds a connection may sit idle "
                                              "(before its first request or between "
                                              "requests) before it is closed.")] = 30,
    held_key_ttl: Annotated[float, typer.Option(help="Seconds a key held for a slave SAE "
                                                "waits to be fetched; then it is erased.")
                            ] = 3600.0,
    allow_cn_identity: Annotated[bool, typer.Option(
        "--allow-cn-identity", help="Accept SAE client certificates that name their SAE by "
        "subject CN only (no sae-id: URI).")] = False,
    advertise: Annotated[str | None, typer.Option(help="Host name remote clients use for "
                                                  "the KMEs: named (DNS SAN) in the KME "
                                                  "certificates made here.")] = None,
    satellite_prefill_bits: SatellitePrefillOption = 0.0,
    satellite_pool_bits: SatellitePoolOption = 1e7,
    satellite_start: SatelliteStartOption = SATELLITE_START,
    satellite_cloud: SatelliteCloudOption = None,
) -> None:
    """Run the KMEs of a scenario on loopback: ETSI GS QKD 014 over mutual TLS, one port and
    one SQLite key store per KME, key emulators filling the pools. One server per data
    folder (a second is refused, exit 2). Ctrl-C or SIGTERM stops and removes the
    manifest."""
    from qkdnet.files.networks import open_network
    from qkdnet.live.runtime import log_to_stderr, loop_factory, run_until_stopped
    from qkdnet.live.serve import ServeOptions, serve, utc_time

    def run() -> None:
        free_port("--om-port", host, om_port)
        writable_folder("--dir", folder, make=False)  # serve makes it, private
        if manifest is not None:
            writable_folder("--manifest", manifest.parent, make=False)
        log_to_stderr()
        options = ServeOptions(folder, host, speedup, prefill_bits, all_nodes, manifest,
                               pool_capacity_bits, om_port, dynamics, seed,
                               idle_timeout, held_key_ttl, allow_cn_identity, advertise,
                               satellite_prefill_bits, satellite_pool_bits,
                               utc_time("--satellite-start", satellite_start),
                               tuple(satellite_cloud or ()))
        network = open_network(scenario)

        def ready(m: dict[str, Any]) -> None:
            print(f"{len(m['kmes'])} KMEs serving; manifest "
                  f"{manifest or folder / 'manifest.json'}", flush=True)
            print(f"O&M: {m['om_url']}")
            for sae, entry in m["saes"].items():
                print(f"SAE {sae} (node {entry['node']}): KME {entry['kme_url']}")
            sys.stdout.flush()

        def progress(line: str) -> None:
            print(line, file=sys.stderr, flush=True)

        run_until_stopped(lambda: serve(network, options, ready, progress), loop_factory())

    guard(run)


@commands.command("fault")
def fault_command(
    action: Annotated[str, typer.Argument(help="cut, blind (trip its detector-current "
                                          "monitor) or repair a QKD-link; stop or start a "
                                          "node; list the faults injected now")],
    target: Annotated[str | None, typer.Argument(help="QKD-link id (a--b) or node id "
                                                 "(none for list)")] = None,
    folder: Annotated[Path, typer.Option("--dir", "-d", help="Data folder of a running "
                                         "`qkdnet serve` (its manifest.json).")] = DATA_FOLDER,
    operator: Annotated[str | None, typer.Option(help="O&M operator (role operator or "
                                                 "admin); default $QKDNET_OPERATOR.")
                        ] = None,
    password_file: Annotated[Path | None, typer.Option(
        help="File whose first line is the operator's password ('-': stdin); default "
        "$QKDNET_PASSWORD.")] = None,
    deployment: Annotated[Path | None, typer.Option(
        help="A deployment file: stop SIGKILLs the node process that runs NODE (every node "
        "placed with it), start starts it again; --dir is then the base folder of "
        "`qkdnet up`.")] = None,
) -> None:
    """Inject a fault into a running `qkdnet serve`, or end it: a cut link makes no key and
    its KM-links report down; a blinded link's detector-current monitor trips and it stops
    distilling; a stopped node's Key Manager and devices go dark (its links
    make no key, its KME answers 503). The controllers route around it and the NMS raises
    its alarms at once; a repair or start clears them. With --deployment, stop and start
    act on the node's process of a deployment run by `qkdnet up`. `qkdnet fault list`
    prints the faults injected now, one a line (any O&M role may read them)."""
    from qkdnet.live.om_client import active_faults, inject_fault

    if action == "list":
        if target is not None or deployment is not None:
            fail("`qkdnet fault list` takes no TARGET and no --deployment: it lists the "
                 "faults of the `qkdnet serve` of --dir")
    elif target is None:
        fail(f"`qkdnet fault {action}` needs a TARGET: a QKD-link id (a--b) or a node id")
    if deployment is not None:
        guard(lambda: _deployment_fault(action, str(target), deployment, folder))
        return

    def run() -> None:
        password = None
        if password_file is not None:
            text = (sys.stdin.read() if str(password_file) == "-"
                    else password_file.read_text(encoding="utf-8"))
            password = text.splitlines()[0] if text else ""
        if action == "list":
            _print_faults(active_faults(folder, operator, password))
            return
        state = inject_fault(folder, action, str(target), operator, password)
        if "link" in state:
            print(f"{state['link']}: "
                  f"{'up' if state['up'] else 'blinded' if state['blinded'] else 'cut'}")
        else:
            print(f"{state['node']}: {'running' if state['running'] else 'stopped'}")

    guard(run)


def _print_faults(faults: dict[str, list[str]]) -> None:
    """One fault a line, ``<link> cut``, ``<link> blinded`` or ``<node> stopped``; ``no
    faults injected`` when there are none."""
    lines = [*(f"{link}\tcut" for link in faults["cut_links"]),
             *(f"{link}\tblinded" for link in faults["blinded_links"]),
             *(f"{node}\tstopped" for node in faults["stopped_nodes"])]
    print("\n".join(lines) if lines else "no faults injected")


def _deployment_fault(action: str, node: str, deployment: Path, base: Path) -> None:
    """``qkdnet fault stop|start NODE --deployment F``: SIGKILL, or start again, the node
    process that runs NODE."""
    from qkdnet.errors import ParameterError
    from qkdnet.files.deployment import load_deployment
    from qkdnet.live.node_processes import (
        kill_node_process,
        local_hosts,
        start_processes,
    )

    plan = load_deployment(deployment, vendor_files_at=())  # the node process checks them
    if action == "stop":
        process = kill_node_process(plan, deployment, base, node)
        print(f"{node}: stopped (node process {process} killed, with its "
              f"{len(plan.process(process).nodes)} nodes)")
    elif action == "start":
        if node not in plan.nodes:
            raise ParameterError("NODE", node, "not placed in the deployment")
        process = plan.process_of(node).id
        started = start_processes(plan, deployment, base, local_hosts(plan, None),
                                  only={process})
        print(f"{node}: running (node process {process} "
              f"{'started' if started else 'was running'})")
    else:
        raise ParameterError("ACTION", action, "on a deployment only stop and start (a "
                             "node's process); QKD-link faults need `qkdnet serve`")


@commands.command("console")
def console_command(
    report: Annotated[Path, typer.Argument(help="Report folder of `qkdnet twin` (with "
                                           "telemetry.npz and network.json).")],
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port of the console; 0: any free port.")] = 8080,
    speed: Annotated[float, typer.Option(help="Simulated seconds replayed per second "
                                         "(10000: ten simulated weeks in about ten minutes; "
                                         "the page changes it).")] = 10_000.0,
    loop: Annotated[bool, typer.Option(help="Start over at the end instead of pausing "
                                       "on the final state.")] = False,
) -> None:
    """Serve the O&M web console over a finished twin run: once a page connects, replay
    its hourly telemetry (SKR, QBER, link state) and its own alarms at their times, with
    play, pause, speed and seek in the page and at /api/replay. Ctrl-C stops."""
    from qkdnet.live.replay_console import serve_replay_console
    from qkdnet.live.runtime import run_until_stopped

    def run() -> None:
        free_port("--port", host, port)
        run_until_stopped(lambda: serve_replay_console(
            report, host, port, speed, loop, lambda line: print(line, flush=True)))

    guard(run)
