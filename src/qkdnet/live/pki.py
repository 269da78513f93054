"""A test PKI for the live network: one CA, a server certificate per KME, a client
certificate per SAE.

Layout of a PKI folder (PEM throughout; private keys unencrypted, mode 0600)::

    ca.crt  ca.key  crl.pem
    kme/<KME id>.crt  kme/<KME id>.key
    sae/<SAE id>.crt  sae/<SAE id>.key

``ca.key`` is needed only to issue and revoke (``qkdnet pki init``, ``qkdnet pki revoke``);
a KME needs only ``ca.crt``, its own ``kme/`` pair and, once something is revoked,
``crl.pem`` (a CRL signed by the CA). Keep ``ca.key`` off the serving nodes: whoever reads
it can mint any SAE.

Certificate to identity (public contract: KMEs identify callers by it, other tools may
issue certificates that follow it):

- An **SAE** certificate has subject CN = the SAE ID and a URI subjectAltName
  ``sae-id:<SAE ID>``; extended key usage clientAuth.
- A **KME** certificate has subject CN = the KME (node) id, a URI subjectAltName
  ``kme-id:<KME id>``, DNS ``localhost`` and IP ``127.0.0.1``; extended key usage serverAuth
  and clientAuth (a KME may call another KME).
- :func:`sae_id_from_certificate` reads the SAE ID from a client certificate: the
  ``sae-id:`` URI if there is one, else the subject CN (for certificates issued by other
  tools). A certificate with a ``kme-id:`` URI is a KME's, not an SAE's, and gives None, so a
  KME calling another KME is never taken for an SAE of the same name.
- :func:`identify_sae` is what a KME applies: the certificate must also carry extended key
  usage clientAuth and basicConstraints CA=false, and a CN-only identity (no ``sae-id:``
  URI) counts only when the KME was started with ``allow_cn_identity``.

IDs used in file names may hold only ``A-Z a-z 0-9 . _ -`` (1 to 64 characters, the most a
CN holds). Keys are EC P-256, cheap to make: a PKI for a hundred parties takes well under a
second.
"""

from __future__ import annotations

import datetime as dt
import functools
import ipaddress
import os
import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from qkdnet.errors import ParameterError

__all__ = [
    "KME_URI_PREFIX",
    "SAE_URI_PREFIX",
    "NotAnSae",
    "Pki",
    "certificate_serial",
    "copy_public_pki",
    "identify_sae",
    "init_pki",
    "kme_id_from_certificate",
    "load_pki",
    "names_not_certified",
    "sae_id_from_certificate",
]

SAE_URI_PREFIX = "sae-id:"
KME_URI_PREFIX = "kme-id:"
_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
_HOST = re.compile(r"(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.?)+")
_ID_RULE = "1 to 64 characters from A-Z a-z 0-9 . _ -"
_CA_NAME = "qkdnet test CA"
_E = TypeVar("_E", bound=x509.ExtensionType)
_CLOCK_SKEW = dt.timedelta(minutes=5)  # certificates are valid from a little in the past


@dataclass(frozen=True)
class Pki:
    """Where the files of a PKI folder are. IDs are sorted; ``init_pki(...) == load_pki(...)``
    for the same folder."""

    folder: Path
    kme_ids: tuple[str, ...]
    sae_ids: tuple[str, ...]

    @property
    def ca_cert(self) -> Path:
        """The CA certificate: the trust anchor of every KME and SAE."""
        return self.folder / "ca.crt"

    @property
    def ca_key(self) -> Path:
        """The CA's private key."""
        return self.folder / "ca.key"

    @property
    def crl(self) -> Path:
        """The certificate revocation list (PEM, signed by the CA); absent until the first
        revocation."""
        return self.folder / "crl.pem"

    def kme_cert(self, kme_id: str) -> Path:
        """The certificate of KME ``kme_id``."""
        return self._file("kme", kme_id, self.kme_ids, ".crt")

    def kme_key(self, kme_id: str) -> Path:
        """The private key of KME ``kme_id``."""
        return self._file("kme", kme_id, self.kme_ids, ".key")

    def sae_cert(self, sae_id: str) -> Path:
        """The client certificate of SAE ``sae_id``."""
        return self._file("sae", sae_id, self.sae_ids, ".crt")

    def sae_key(self, sae_id: str) -> Path:
        """The private key of SAE ``sae_id``."""
        return self._file("sae", sae_id, self.sae_ids, ".key")

    def _file(self, kind: str, ident: str, known: tuple[str, ...], suffix: str) -> Path:
        if ident not in known:
            raise ParameterError(f"{kind}_id", ident,
                                 f"no such {kind.upper()} in {self.folder}; known: "
                                 + (", ".join(known) or "none"))
        return self.folder / kind / (ident + suffix)


def init_pki(folder: Path, kme_ids: Sequence[str], sae_ids: Sequence[str],
             validity_days: int = 825, *, overwrite: bool = False,
             kme_names: Sequence[str] = ()) -> Pki:
    """Make a CA and a certificate and key for each KME and SAE in ``folder``.

    Every KME certificate names ``localhost`` and ``127.0.0.1``, and also each of
    ``kme_names``: an IP address becomes an IP subjectAltName, anything else a DNS one (the
    address or host name the KMEs are served on, so remote clients verifying host names
    accept them). Unspecified addresses (``0.0.0.0``, ``::``) name no host and are skipped.

    Refuses (ParameterError) a folder that already holds a PKI unless ``overwrite``; then the
    old PKI files (and only those) are removed first. Certificates are valid from five
    minutes ago for ``validity_days`` days (825 is the longest that browsers accept).
    """
    kmes, saes = _checked_ids("kme_ids", kme_ids), _checked_ids("sae_ids", sae_ids)
    names = _server_names(kme_names)
    if validity_days < 1:
        raise ParameterError("validity_days", validity_days, "must be >= 1 day")
    pki = Pki(Path(folder), kmes, saes)
    _clear(pki, overwrite)
    now = dt.datetime.now(dt.UTC)
    period = (now - _CLOCK_SKEW, now + dt.timedelta(days=validity_days))
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = _ca_certificate(ca_key, period)
    _write(pki.ca_cert, pki.ca_key, ca_cert, ca_key)
    for kme in kmes:
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _leaf(ca_cert, ca_key, key, kme, _kme_extras(kme, names), period)
        _write(pki.kme_cert(kme), pki.kme_key(kme), cert, key)
    for sae in saes:
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _leaf(ca_cert, ca_key, key, sae, _sae_extras(sae), period)
        _write(pki.sae_cert(sae), pki.sae_key(sae), cert, key)
    return pki


def load_pki(folder: Path) -> Pki:
    """The PKI that :func:`init_pki` wrote in ``folder``: every KME and SAE whose ``.crt``
    and ``.key`` are both there. Only ``ca.crt`` is required: a serving node holds no
    ``ca.key``."""
    folder = Path(folder)
    if not (folder / "ca.crt").is_file():
        raise ParameterError("folder", folder, "must hold a PKI made by `qkdnet pki init` "
                             "(ca.crt is missing)")
    return Pki(folder, _pairs(folder / "kme"), _pairs(folder / "sae"))


def copy_public_pki(source: Pki, target: Path) -> Pki:
    """Copy a PKI folder without its CA key: ``ca.crt``, ``crl.pem`` if any, and the
    ``kme/`` and ``sae/`` pairs (key files keep mode 0600); the copy as loaded."""
    target.mkdir(parents=True, exist_ok=True)
    for path in (source.ca_cert, source.crl):
        if path.is_file():
            shutil.copy2(path, target / path.name)
    for kind in ("kme", "sae"):
        if (source.folder / kind).is_dir():
            shutil.copytree(source.folder / kind, target / kind, dirs_exist_ok=True)
    return load_pki(target)


def sae_id_from_certificate(der: bytes) -> str | None:
    """The SAE ID a DER client certificate names: its ``sae-id:`` URI, else its CN.

    None when the certificate names no SAE, names several different ones, belongs to a KME
    (``kme-id:`` URI) or cannot be parsed: the caller is then not identified.
    """
    cert = _parse(der)
    if cert is None or _uri_ids(cert, KME_URI_PREFIX):
        return None
    from_uri = _uri_ids(cert, SAE_URI_PREFIX)
    if from_uri:
        return from_uri.pop() if len(from_uri) == 1 else None
    return _common_name(cert)


class NotAnSae(ValueError):
    """A client certificate a KME does not accept as an SAE's; the message says why."""


def identify_sae(der: bytes, *, allow_cn_identity: bool = False) -> str:
    """The SAE ID of a DER client certificate that a KME accepts; :class:`NotAnSae` naming
    the problem otherwise.

    Accepted: an end-entity certificate (basicConstraints CA=false, or no basicConstraints)
    with extended key usage clientAuth, naming one SAE by a ``sae-id:`` URI, or, only when
    ``allow_cn_identity``, by its subject CN alone. The chain to the CA is the TLS layer's
    business, not checked here.
    """
    cert = _parse(der)
    if cert is None:
        raise NotAnSae("client certificate cannot be parsed")
    try:
        constraints = _extension(cert, x509.BasicConstraints)
        eku = _extension(cert, x509.ExtendedKeyUsage)
    except ValueError:
        raise NotAnSae("client certificate has malformed extensions") from None
    if constraints is not None and constraints.ca:
        raise NotAnSae("client certificate is a CA certificate (basicConstraints CA=true)")
    if eku is None or ExtendedKeyUsageOID.CLIENT_AUTH not in eku:
        raise NotAnSae("client certificate lacks extended key usage clientAuth")
    if _uri_ids(cert, KME_URI_PREFIX):
        raise NotAnSae("client certificate is a KME's (kme-id: URI), not an SAE's")
    from_uri = _uri_ids(cert, SAE_URI_PREFIX)
    if len(from_uri) > 1:
        raise NotAnSae("client certificate names several SAE IDs")
    if from_uri:
        return from_uri.pop()
    if not allow_cn_identity:
        raise NotAnSae("client certificate has no sae-id: URI subjectAltName (a CN-only "
                       "identity needs `qkdnet serve --allow-cn-identity`)")
    cn = _common_name(cert)
    if cn is None:
        raise NotAnSae("client certificate names no SAE")
    return cn


def names_not_certified(cert_path: Path, names: Sequence[str]) -> list[str]:
    """Which of ``names`` (addresses or host names, as for ``init_pki``'s ``kme_names``)
    the certificate at ``cert_path`` does not name; unspecified addresses are skipped."""
    cert = x509.load_pem_x509_certificate(Path(cert_path).read_bytes())
    san = _extension(cert, x509.SubjectAlternativeName)
    held = list(san) if san is not None else []
    return [name for name in names
            if not all(entry in held for entry in _server_names([name]))]


def certificate_serial(der: bytes) -> int | None:
    """The serial number of a DER certificate; None if it cannot be parsed."""
    cert = _parse(der)
    return cert.serial_number if cert is not None else None


def kme_id_from_certificate(der: bytes) -> str | None:
    """The KME id a DER certificate names (its ``kme-id:`` URI); None if it names none or
    several."""
    cert = _parse(der)
    ids = _uri_ids(cert, KME_URI_PREFIX) if cert is not None else set()
    return ids.pop() if len(ids) == 1 else None


def _checked_ids(name: str, ids: Sequence[str]) -> tuple[str, ...]:
    if isinstance(ids, str):
        raise ParameterError(name, repr(ids), "must be a list of ids, not one string")
    for ident in ids:
        if not isinstance(ident, str) or not _ID.fullmatch(ident):
            raise ParameterError(name, repr(ident), _ID_RULE)
    return tuple(sorted(set(ids)))


def _clear(pki: Pki, overwrite: bool) -> None:
    """Refuse a folder that holds a PKI (unless ``overwrite``: then remove its files)."""
    old = [p for p in (pki.ca_cert, pki.ca_key) if p.exists()]
    for kind in ("kme", "sae"):
        old += [p for p in (pki.folder / kind).glob("*") if p.suffix in (".crt", ".key")]
    if old and not overwrite:
        raise ParameterError("folder", pki.folder,
                             "already holds a PKI; pass overwrite=True to replace it")
    for path in old:
        path.unlink()


def _pairs(folder: Path) -> tuple[str, ...]:
    stems = {p.stem for p in folder.glob("*.crt") if (folder / (p.stem + ".key")).is_file()}
    return tuple(sorted(s for s in stems if _ID.fullmatch(s)))


def _ca_certificate(key: ec.EllipticCurvePrivateKey,
                    period: tuple[dt.datetime, dt.datetime]) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, _CA_NAME)])
    public = key.public_key()
    return (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name).public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(period[0]).not_valid_after(period[1])
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(cert_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )


def _leaf(ca_cert: x509.Certificate, ca_key: ec.EllipticCurvePrivateKey,
          key: ec.EllipticCurvePrivateKey, common_name: str,
          extras: tuple[x509.SubjectAlternativeName, x509.ExtendedKeyUsage],
          period: tuple[dt.datetime, dt.datetime]) -> x509.Certificate:
    """An end-entity certificate with subject CN ``common_name`` and the given SAN and EKU."""
    san, eku = extras
    public = key.public_key()
    ca_ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(ca_cert.subject).public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(period[0]).not_valid_after(period[1])
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(cert_sign=False), critical=True)
        .add_extension(san, critical=False)
        .add_extension(eku, critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski),
            critical=False)
        .sign(ca_key, hashes.SHA256())
    )


def _server_names(names: Sequence[str]) -> list[x509.GeneralName]:
    """subjectAltNames for the addresses and host names a KME is served on (besides
    localhost and 127.0.0.1, which every KME certificate names)."""
    out: list[x509.GeneralName] = [x509.DNSName("localhost"),
                                   x509.IPAddress(ipaddress.IPv4Address("127.0.0.1"))]
    for name in names:
        try:
            address = ipaddress.ip_address(name.strip("[]"))
        except ValueError:
            if not _HOST.fullmatch(name):
                raise ParameterError("kme_names", repr(name),
                                     "an IP address or a DNS host name") from None
            entry: x509.GeneralName = x509.DNSName(name.lower())
        else:
            if address.is_unspecified:
                continue  # 0.0.0.0 / :: is where to listen, not a name to verify
            entry = x509.IPAddress(address)
        if entry not in out:
            out.append(entry)
    return out


def _kme_extras(kme_id: str, names: list[x509.GeneralName]
                ) -> tuple[x509.SubjectAlternativeName, x509.ExtendedKeyUsage]:
    san = x509.SubjectAlternativeName(
        [x509.UniformResourceIdentifier(KME_URI_PREFIX + kme_id), *names])
    eku = x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                 ExtendedKeyUsageOID.CLIENT_AUTH])
    return san, eku


def _sae_extras(sae_id: str) -> tuple[x509.SubjectAlternativeName, x509.ExtendedKeyUsage]:
    san = x509.SubjectAlternativeName([x509.UniformResourceIdentifier(SAE_URI_PREFIX + sae_id)])
    return san, x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH])


def _key_usage(*, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not cert_sign, content_commitment=False, key_encipherment=False,
        data_encipherment=False, key_agreement=False, key_cert_sign=cert_sign,
        crl_sign=cert_sign, encipher_only=False, decipher_only=False)


def _write(cert_path: Path, key_path: Path, cert: x509.Certificate,
           key: ec.EllipticCurvePrivateKey) -> None:
    """Write a certificate (mode from the umask) and its key (mode 0600, never wider)."""
    cert_path.parent.mkdir(parents=True, exist_ok=True)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        os.fchmod(out.fileno(), 0o600)
        out.write(pem)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


@functools.lru_cache(maxsize=1024)  # a client's certificate is read on every request
def _parse(der: bytes) -> x509.Certificate | None:
    try:
        return x509.load_der_x509_certificate(der)
    except ValueError:
        return None


def _extension(cert: x509.Certificate, kind: type[_E]) -> _E | None:
    """The value of the ``kind`` extension, None if absent (ValueError if malformed)."""
    try:
        return cert.extensions.get_extension_for_class(kind).value
    except x509.ExtensionNotFound:
        return None


def _uri_ids(cert: x509.Certificate, prefix: str) -> set[str]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (x509.ExtensionNotFound, ValueError):  # none, or malformed
        return set()
    uris = san.get_values_for_type(x509.UniformResourceIdentifier)
    return {u.removeprefix(prefix) for u in uris if u.startswith(prefix) and len(u) > len(prefix)}


def _common_name(cert: x509.Certificate) -> str | None:
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if len(names) != 1 or not isinstance(names[0].value, str) or not names[0].value:
        return None
    return names[0].value
