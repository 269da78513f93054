"""``qkdnet pki ...``: certificates for trying the KMEs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from qkdnet.cli.guard import guard, writable_folder
from qkdnet.cli.options import ScenarioOption
from qkdnet.errors import ParameterError

commands = typer.Typer(help="Certificates for trying the KMEs: a CA, KME and SAE "
                       "certificates.", no_args_is_help=True)


@commands.command("init")
def pki_init(
    folder: Annotated[Path, typer.Argument(help="Folder for ca.crt, kme/ and sae/.")],
    scenario: ScenarioOption = "cn-qcn",
    all_nodes: Annotated[bool, typer.Option(help="Certificates for every node's KME, user "
                                            "nodes without SAEs too.")] = False,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing PKI.")] = False,
    kme_name: Annotated[list[str] | None, typer.Option(
        "--kme-name", help="An address or host name the KMEs are served on, named in their "
        "certificates besides localhost and 127.0.0.1 (repeatable).")] = None,
) -> None:
    """Create a CA and the KME and SAE certificates of a scenario (SAE ID = certificate
    CN and URI SAN sae-id:<id>), and those of a deployment's services (the controller, the
    NMS, each region's EMS: kme-id qkdnet-controller, qkdnet-nms, qkdnet-ems-<region>).
    Copy it to the serving nodes without ca.key."""
    from qkdnet.files.networks import open_network
    from qkdnet.keys.domain_border import interop_kms_ids
    from qkdnet.live.pki import init_pki
    from qkdnet.topology.served import served_nodes
    from qkdnet.topology.service_ids import service_ids

    def make() -> None:
        network = open_network(scenario)
        kmes = served_nodes(network, all_nodes)
        kmes += interop_kms_ids(network, kmes)  # a gateway's KMS per operator there
        services = service_ids(network)
        writable_folder("FOLDER", folder, make=False)  # init_pki makes it
        try:
            pki = init_pki(folder, [*kmes, *services], [s.id for s in network.saes],
                           overwrite=overwrite, kme_names=kme_name or ())
        except ParameterError as exc:
            if exc.name != "folder" or "already holds" not in exc.allowed:
                raise
            # the library names its keyword argument; a user of the CLI needs the option
            raise ParameterError("FOLDER", folder, "already holds a PKI; pass --overwrite "
                                 "to replace it (its CA too: certificates made from the "
                                 "old CA stop working)") from None
        print(f"{pki.ca_cert} ({len(kmes)} KMEs, {len(services)} services, "
              f"{len(pki.sae_ids)} SAEs)")

    guard(make)


@commands.command("revoke")
def pki_revoke(
    sae: Annotated[str, typer.Argument(help="The SAE whose certificate to revoke.")],
    folder: Annotated[Path, typer.Option("--dir", "-d", help="The CA's PKI folder (with "
                                         "ca.key, as `qkdnet pki init` made it).")],
    copy_to: Annotated[list[Path] | None, typer.Option(
        "--copy-to", help="Also write the CRL here, e.g. DATA/pki/crl.pem of a serving "
        "node (repeatable); KMEs re-read it on change.")] = None,
) -> None:
    """Revoke an SAE's certificate: add it to DIR/crl.pem, signed by the CA. A running
    `qkdnet serve` refuses the SAE (401) within a second of its pki/crl.pem holding the
    new list (the KMEs look at the file at most once a second)."""
    from qkdnet.live.pki import load_pki
    from qkdnet.live.revocation import revoke

    def run() -> None:
        pki = load_pki(folder)
        crl = revoke(pki, sae, copy_to or ())
        print(f"{pki.crl}: {len(list(crl))} revoked", *(f"; copied to {p}" for p in copy_to or ()),
              sep="")

    guard(run)
