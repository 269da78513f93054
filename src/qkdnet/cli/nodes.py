"""``qkdnet node``, ``qkdnet controller``, ``qkdnet qkd-devices``, ``qkdnet ems``, ``qkdnet
nms``, ``qkdnet up``,
``qkdnet down``, ``qkdnet status``: the live network as the processes of a deployment
file, on this machine and others."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from qkdnet.cli.guard import guard
from qkdnet.cli.options import (
    SATELLITE_START,
    SatelliteCloudOption,
    SatellitePoolOption,
    SatellitePrefillOption,
    SatelliteStartOption,
)

commands = typer.Typer()

DeploymentOption = Annotated[Path, typer.Option("--deployment", help="The deployment file "
                                                "(qkdnet_deployment: 1).")]
DeploymentArgument = Annotated[Path, typer.Argument(help="The deployment file "
                                                    "(qkdnet_deployment: 1).")]
BaseOption = Annotated[Path, typer.Option("--dir", "-d", help="Base folder: BASE/pki, and "
                                          "BASE/<process> for each node process.")]
SpeedupOption = Annotated[float, typer.Option(help="Make key this many times faster than "
                                              "the modelled rates.")]
PrefillOption = Annotated[int, typer.Option(help="Key (bits) each KM-link between a "
                                            "process's own nodes starts with.")]


@commands.command("node")
def node_command(
    deployment: DeploymentOption,
    process: Annotated[str | None, typer.Option(help="The node process to run.")] = None,
    node: Annotated[str | None, typer.Option(help="Run the process this node is placed "
                                             "in.")] = None,
    folder: Annotated[Path | None, typer.Option("--dir", "-d", help="Data folder (default "
                                                "qkdnet-node-<process>).")] = None,
    pki: Annotated[Path, typer.Option(help="PKI folder: ca.crt and kme/<node>.crt|key of "
                                      "the process's nodes.")] = Path("pki"),
    listen: Annotated[str | None, typer.Option(help="Address to listen on (default: the "
                                               "host's address in the deployment).")] = None,
    speedup: SpeedupOption = 1.0,
    prefill_bits: PrefillOption = 0,
    local_controller: Annotated[bool, typer.Option(
        "--local-controller", help="Route with a controller in this process instead of the "
        "deployment's controller service.")] = False,
) -> None:
    """Run one node process of a deployment: the KM, key store and ETSI GS QKD 014 KME of
    each node placed in it, KM-to-KM with the other processes over mutual TLS, and the key
    supply of its KM-links. Ctrl-C or SIGTERM stops it."""
    from qkdnet.errors import ParameterError
    from qkdnet.files.deployment import load_deployment
    from qkdnet.live.node_service import NodeOptions, run_node
    from qkdnet.live.runtime import log_to_stderr, loop_factory, run_until_stopped

    def run() -> None:
        plan = load_deployment(deployment, vendor_files_at=())
        if (process is None) == (node is None):
            raise ParameterError("--process", process, "give exactly one of --process and "
                                 "--node")
        chosen = process
        if node is not None:
            try:
                chosen = plan.process_of(node).id
            except KeyError:
                raise ParameterError("--node", node, "not placed in the deployment") from None
        assert chosen is not None
        try:
            plan.process(chosen)
        except KeyError:
            raise ParameterError("--process", chosen, "no such process in the deployment; "
                                 "it has " + ", ".join(p.id for p in plan.processes)
                                 ) from None
        # the vendor devices' files of this process's nodes must be here
        plan = load_deployment(deployment, vendor_files_at=plan.process(chosen).nodes)
        options = NodeOptions(folder or Path(f"qkdnet-node-{chosen}"), pki, listen, speedup,
                              prefill_bits, local_controller=local_controller)
        log_to_stderr()

        def ready(manifest: dict[str, Any]) -> None:
            print(f"node process {chosen}: {len(manifest['kmes'])} KMEs serving, KM-to-KM "
                  f"at {manifest['km_url']}", flush=True)

        run_until_stopped(lambda: run_node(plan, chosen, options, ready), loop_factory())

    guard(run)


@commands.command("controller")
def controller_command(
    deployment: DeploymentOption,
    pki: Annotated[Path, typer.Option(help="PKI folder: ca.crt and "
                                      "kme/qkdnet-controller.crt|key.")] = Path("pki"),
    folder: Annotated[Path, typer.Option("--dir", "-d", help="Folder for its manifest.")
                      ] = Path("qkdnet-controller"),
    listen: Annotated[str | None, typer.Option(help="Address to listen on (default: the "
                                               "host's address in the deployment).")] = None,
) -> None:
    """Run the deployment's controller service: the node processes report their KM-links to
    it and ask it for routes, over mutual TLS. Ctrl-C or SIGTERM stops it."""
    from qkdnet.files.deployment import load_deployment
    from qkdnet.live.controller_process import run_controller
    from qkdnet.live.runtime import log_to_stderr, loop_factory, run_until_stopped

    def run() -> None:
        plan = load_deployment(deployment, vendor_files_at=())
        log_to_stderr()

        def ready(manifest: dict[str, Any]) -> None:
            print(f"controller serving at {manifest['controller_url']}", flush=True)

        run_until_stopped(lambda: run_controller(plan, pki, folder, listen, ready),
                          loop_factory())

    guard(run)


@commands.command("qkd-devices")
def devices_command(
    deployment: DeploymentOption,
    pki: Annotated[Path, typer.Option(help="PKI folder: ca.crt and "
                                      "kme/qkdnet-devices.crt|key.")] = Path("pki"),
    folder: Annotated[Path, typer.Option("--dir", "-d", help="Folder for its manifest.")
                      ] = Path("qkdnet-devices"),
    listen: Annotated[str | None, typer.Option(help="Address to listen on (default: the "
                                               "host's address in the deployment).")] = None,
    speedup: SpeedupOption = 1.0,
    satellite_prefill_bits: SatellitePrefillOption = 0.0,
    satellite_pool_bits: SatellitePoolOption = 1e7,
    satellite_start: SatelliteStartOption = SATELLITE_START,
    satellite_cloud: SatelliteCloudOption = None,
) -> None:
    """Run the deployment's emulated QKD devices: the device pair of each border KM-link
    (not given to a vendor's device), making key at its modelled rate with the live
    dynamics and serving each end to its KM over ETSI GS QKD 014 (mutual TLS); and, where
    the deployment places ground stations, fly the satellites: their passes fill the pools
    (kept in the folder across restarts), each satellite KM-link is served as a device pair
    to its two ground stations, and the pools and passes are reported to the NMS. Ctrl-C or
    SIGTERM stops it."""
    from qkdnet.errors import ParameterError
    from qkdnet.files.deployment import load_deployment
    from qkdnet.live.device_process import run_devices
    from qkdnet.live.runtime import log_to_stderr, loop_factory, run_until_stopped
    from qkdnet.live.satellite_supply import SatelliteSettings
    from qkdnet.live.serve import utc_time

    def run() -> None:
        plan = load_deployment(deployment, vendor_files_at=())
        if plan.devices is None:
            raise ParameterError("--deployment", str(deployment), "places no devices "
                                 "service (add devices: {host: ..., port: ...})")
        if not speedup > 0:
            raise ParameterError("--speedup", speedup, "must be > 0")
        satellite = SatelliteSettings(satellite_prefill_bits, satellite_pool_bits,
                                      utc_time("--satellite-start", satellite_start),
                                      tuple(satellite_cloud or ()))
        log_to_stderr()

        def ready(manifest: dict[str, Any]) -> None:
            print(f"devices of {len(manifest['km_links'])} KM-links serving at "
                  f"{manifest['devices_url']}", flush=True)

        run_until_stopped(lambda: run_devices(plan, pki, folder, listen, speedup, ready,
                                              satellite), loop_factory())

    guard(run)


@commands.command("ems")
def ems_command(
    deployment: DeploymentOption,
    region: Annotated[str, typer.Option(help="The region whose EMS to run.")],
    pki: Annotated[Path, typer.Option(help="PKI folder: ca.crt and "
                                      "kme/qkdnet-ems-<region>.crt|key.")] = Path("pki"),
    folder: Annotated[Path | None, typer.Option("--dir", "-d", help="Folder for its manifest "
                                                "(default qkdnet-ems-<region>).")] = None,
    listen: Annotated[str | None, typer.Option(help="Address to listen on (default: the "
                                               "host's address in the deployment).")] = None,
) -> None:
    """Run the EMS of one region: its nodes push their telemetry to it over mutual TLS, and
    it forwards it to the NMS every second. Ctrl-C or SIGTERM stops it."""
    from qkdnet.errors import ParameterError
    from qkdnet.files.deployment import load_deployment
    from qkdnet.live.ems_process import run_ems
    from qkdnet.live.runtime import log_to_stderr, loop_factory, run_until_stopped

    def run() -> None:
        plan = load_deployment(deployment, vendor_files_at=())
        try:
            plan.ems_of(region)
        except KeyError:
            raise ParameterError("--region", region, "no EMS for it in the deployment; it "
                                 "has " + (", ".join(e.region for e in plan.ems) or "none")
                                 ) from None
        log_to_stderr()

        def ready(manifest: dict[str, Any]) -> None:
            print(f"EMS {region} serving at {manifest['ems_url']}", flush=True)

        run_until_stopped(lambda: run_ems(plan, region, pki,
                                          folder or Path(f"qkdnet-ems-{region}"), listen,
                                          ready), loop_factory())

    guard(run)


@commands.command("nms")
def nms_command(
    deployment: DeploymentOption,
    pki: Annotated[Path, typer.Option(help="PKI folder: ca.crt and "
                                      "kme/qkdnet-nms.crt|key.")] = Path("pki"),
    folder: Annotated[Path, typer.Option("--dir", "-d", help="Folder for its manifest, O&M "
                                         "operators (qkdnet operator add --dir) and audit "
                                         "log.")] = Path("qkdnet-nms"),
    listen: Annotated[str | None, typer.Option(help="Address to listen on (default: the "
                                               "host's address in the deployment).")] = None,
) -> None:
    """Run the deployment's NMS: it takes the EMSs' telemetry over mutual TLS, raises the
    alarms, and serves the O&M console and /metrics on the deployment's nms port. Ctrl-C
    or SIGTERM stops it."""
    from qkdnet.files.deployment import load_deployment
    from qkdnet.live.nms_process import run_nms
    from qkdnet.live.runtime import log_to_stderr, loop_factory, run_until_stopped

    def run() -> None:
        plan = load_deployment(deployment, vendor_files_at=())
        log_to_stderr()

        def ready(manifest: dict[str, Any]) -> None:
            print(f"NMS: O&M console at {manifest['om_url']}, taking the EMSs' telemetry at "
                  f"{manifest['nms_url']}", flush=True)

        run_until_stopped(lambda: run_nms(plan, pki, folder, listen, ready), loop_factory())

    guard(run)


@commands.command("up")
def up_command(
    deployment: DeploymentArgument,
    base: BaseOption = Path("qkdnet-deployment"),
    host: Annotated[str | None, typer.Option(help="Start the processes placed on this host "
                                             "(default: the hosts on loopback).")] = None,
    speedup: SpeedupOption = 1.0,
    prefill_bits: PrefillOption = 0,
    satellite_prefill_bits: SatellitePrefillOption = 0.0,
) -> None:
    """Start every process of the deployment placed on this machine's host (the controller
    service, the NMS, the EMSs, then the node processes; those already running are left
    alone) and wait until
    each serves."""
    from qkdnet.files.deployment import load_deployment
    from qkdnet.live.node_processes import local_hosts, start_processes
    from qkdnet.live.om_access import is_loopback

    def run() -> None:
        plan = load_deployment(deployment, vendor_files_at=())
        hosts = local_hosts(plan, host)
        plan = load_deployment(deployment, vendor_files_at=[
            n for h in hosts for p in plan.processes_on(h) for n in p.nodes])
        started = start_processes(plan, deployment, base, hosts,
                                  ["--speedup", str(speedup), "--prefill-bits",
                                   str(prefill_bits)],
                                  ["--satellite-prefill-bits", str(satellite_prefill_bits)])
        print(f"started {len(started)} processes on {', '.join(hosts)}: "
              + (", ".join(started) or "none (all were running)"))
        print(f"PKI: {base / 'pki'}; logs: {base}/<process>/node.log")
        if plan.nms.host in hosts:
            address, port = plan.nms_address()
            scheme = "http" if is_loopback(address) else "https"
            print(f"O&M console (NMS): {scheme}://{address}:{port}/")

    guard(run)


@commands.command("down")
def down_command(
    deployment: DeploymentArgument,
    base: BaseOption = Path("qkdnet-deployment"),
    kill: Annotated[bool, typer.Option(help="SIGKILL at once instead of SIGTERM.")] = False,
) -> None:
    """Stop the deployment's processes running from this base folder (the nodes first)."""
    from qkdnet.files.deployment import load_deployment
    from qkdnet.live.node_processes import stop_processes

    def run() -> None:
        plan = load_deployment(deployment, vendor_files_at=())
        stopped = stop_processes(plan, deployment, base, kill)
        print(f"stopped {len(stopped)} processes: " + (", ".join(stopped) or "none"))

    guard(run)


@commands.command("status")
def status_command(
    deployment: DeploymentArgument,
    base: BaseOption = Path("qkdnet-deployment"),
) -> None:
    """The deployment's processes: running or not, and whether their ports answer (a node
    process: KME and KM-to-KM; the NMS: O&M and its port for the EMSs; the controller, the
    devices service and an EMS: its port); then the key supply of each end of each border
    KM-link: blocks stored, and key lost because only one end received it. Exit 1 if any
    process is not serving."""
    from rich.console import Console
    from rich.table import Table

    from qkdnet.files.deployment import load_deployment
    from qkdnet.live.node_processes import border_supply_states, process_states

    def run() -> int:
        plan = load_deployment(deployment, vendor_files_at=())
        table = Table("process", "host", "nodes", "pid", "KME", "KM-to-KM")
        down = 0
        for s in process_states(plan, deployment, base):
            serving = s.pid is not None and s.kme_listening and s.km_listening
            down += not serving
            table.add_row(s.process, s.host, str(s.nodes), str(s.pid or "-"),
                          "up" if s.kme_listening else "down",
                          "up" if s.km_listening else "down")
        Console().print(table)
        supply = border_supply_states(plan, base)
        if supply:
            border = Table("border KM-link", "process", "blocks stored", "key lost (bits)")
            for b in supply:
                border.add_row(b.km_link, b.process, str(b.stored_blocks), str(b.lost_bits))
            Console().print(border)
        return 1 if down else 0

    sys.exit(guard(run))
