# The image the manifests of `qkdnet deploy compose|kubernetes` run (their default image is
# qkdnet:latest). Build it from the repository root:
#   docker build -t qkdnet:latest .
# The package only (no test extra); every container runs `qkdnet <command>` as user 10001.
FROM python:3.11-slim

# Fixed ids: the manifests name them (qkdnet.deploy.containers.RUN_AS_UID/GID) for Kubernetes'
# runAsUser/fsGroup, and the PKI files mounted on a Compose host must be readable by them.
RUN groupadd --system --gid 10001 qkdnet \
 && useradd --system --uid 10001 --gid qkdnet --home-dir /var/lib/qkdnet \
        --create-home --shell /usr/sbin/nologin qkdnet \
 && chmod 0700 /var/lib/qkdnet

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /tmp/qkdnet-src
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install . && rm -rf /tmp/qkdnet-src

# Key stores live here (a volume or PersistentVolumeClaim is mounted over it); a named
# Compose volume starts as a copy of this folder, owned by the user.
WORKDIR /var/lib/qkdnet
USER 10001:10001
ENTRYPOINT ["qkdnet"]
CMD ["--help"]
