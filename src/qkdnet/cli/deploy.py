"""``qkdnet deploy ...``: a deployment file as Compose or Kubernetes manifests; the
Prometheus alert rules of the NMS's alarm rules."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, cast

import typer

from qkdnet.cli.guard import guard, writable_file, writable_folder

if TYPE_CHECKING:
    from qkdnet.deploy.kubernetes import ServiceType

commands = typer.Typer(help="Write the manifests that run a deployment file's processes: "
                       "Compose or Kubernetes.", no_args_is_help=True)

DeploymentArgument = Annotated[Path, typer.Argument(help="The deployment file "
                                                    "(qkdnet_deployment: 1).")]
OutOption = Annotated[Path, typer.Option("--out", "-o", help="Folder to write into (made if "
                                         "absent; files of the same names are replaced).")]
ImageOption = Annotated[str, typer.Option(help="Container image with qkdnet installed.")]


@commands.command("compose")
def deploy_compose(
    deployment: DeploymentArgument,
    out: OutOption,
    pki: Annotated[str, typer.Option(help="The `qkdnet pki` folder the secrets are read from "
                                     "when the services start: absolute, or relative to "
                                     "the output folder.")] = "pki",
    image: ImageOption = "qkdnet:latest",
) -> None:
    """Write compose.yaml (one service per node process, the controller, one EMS per region,
    the NMS; host networking; a profile per host) and the deployment file it mounts. On
    each host H: docker compose --profile H up -d."""
    from qkdnet.deploy.compose import compose_files
    from qkdnet.files.deployment import load_deployment

    def run() -> None:
        plan = load_deployment(deployment, vendor_files_at=())  # the writers read none
        writable_folder("--out", out)
        written = _write(out, compose_files(plan, pki, image))
        print(f"{out / written[0]} ({len(written)} files)")

    guard(run)


@commands.command("kubernetes")
def deploy_kubernetes(
    deployment: DeploymentArgument,
    out: OutOption,
    pki: Annotated[Path | None, typer.Option(help="A `qkdnet pki` folder: write its "
                                             "certificates and keys as Secrets (else the "
                                             "Secrets are only named).")] = None,
    image: ImageOption = "qkdnet:latest",
    service_type: Annotated[str, typer.Option(help="Type of the Services: ClusterIP, "
                                              "NodePort or LoadBalancer (for SAEs outside "
                                              "the cluster).")] = "ClusterIP",
    storage: Annotated[str, typer.Option(help="Size of each node process's key store "
                                         "volume (a Kubernetes quantity).")] = "1Gi",
) -> None:
    """Write Kubernetes manifests and a kustomization.yaml (kubectl apply -k DIR): a
    StatefulSet with a volume per node process, a Deployment for the controller, each EMS
    and the NMS, a Service each, the deployment file in a ConfigMap, Secrets for the
    certificates."""
    from qkdnet.deploy.kubernetes import kubernetes_files, secret_names
    from qkdnet.errors import ParameterError
    from qkdnet.files.deployment import load_deployment

    def run() -> None:
        if service_type not in ("ClusterIP", "NodePort", "LoadBalancer"):
            raise ParameterError("--service-type", service_type,
                                 "ClusterIP, NodePort or LoadBalancer")
        loaded = load_deployment(deployment, vendor_files_at=())
        writable_folder("--out", out)
        files = kubernetes_files(loaded, image, pki, cast("ServiceType", service_type),
                                 storage)
        written = _write(out, files)
        print(f"{out / 'kustomization.yaml'} ({len(written)} files)")
        if pki is None:
            print("create these Secrets (see README, Deploying on several hosts): "
                  + ", ".join(secret_names(loaded)))

    guard(run)


@commands.command("alert-rules")
def deploy_alert_rules(
    out: Annotated[Path, typer.Option("--out", "-o", help="The rules file to write "
                                      "(replaced if it exists).")],
) -> None:
    """Write Prometheus alerting rules that raise what the NMS's built-in alarm rules
    raise, over the series of /metrics (deploy/monitoring/qkdnet-alerts.yml is this
    file)."""
    from qkdnet.deploy.alert_rules import alert_rules

    def run() -> None:
        writable_file("--out", out, "rules file").write_text(alert_rules(), encoding="utf-8")
        print(out)

    guard(run)


def _write(folder: Path, files: dict[str, str]) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(text, encoding="utf-8")
    return list(files)
