"""``qkdnet pki ...``: certificates for trying the KMEs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from qkdnet.cli.guard import guard
from qkdnet.cli.options import ScenarioOption

commands = typer.Typer(help="Certificates for trying the KMEs: a CA, KME and SAE "
                       "certificates.", no_args_is_help=True)


@commands.command("init")
def pki_init(
    folder: Annotated[Path, typer.Argument(help="Folder for ca.crt, kme/ and sae/.")],
    scenario: ScenarioOption = "cn-qcn",
    all_nodes: Annotated[bool, typer.Option(help="Certificates for every node's KME, user "
                                            "nodes without SAEs too.")] = False,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing PKI.")] = False,
) -> None:
    """Create a CA and the KME and SAE certificates of a scenario (SAE ID = certificate
    CN and URI SAN sae-id:<id>)."""
    from qkdnet.files.networks import open_network
    from qkdnet.live.keynet import served_nodes
    from qkdnet.live.pki import init_pki

    def make() -> None:
        network = open_network(scenario)
        pki = init_pki(folder, served_nodes(network, all_nodes), [s.id for s in network.saes],
                       overwrite=overwrite)
        print(f"{pki.ca_cert} ({len(pki.kme_ids)} KMEs, {len(pki.sae_ids)} SAEs)")

    guard(make)
