"""Certificate revocation for the live network: the CA writes a CRL, every KME reads it.

:func:`revoke` (``qkdnet pki revoke SAE --dir PKI``) adds an SAE certificate's serial to
``PKI/crl.pem``, signs the list with ``PKI/ca.key`` and writes it atomically (readers never
see half a file), and may copy it to the PKI folders of serving nodes.

:class:`RevocationWatch` is the KME side: on a request at least :data:`CHECK_EVERY_S` after
its last look it checks whether the CRL file changed (one ``stat``) and re-reads it when it
did, so a revocation takes effect within :data:`CHECK_EVERY_S` of the new file (on the first
request after that), on connections already open too, without a restart (a ``stat`` at
every request cost a few per cent of the server's CPU per same-node Get key). The check is
done by the application, not by OpenSSL (``VERIFY_CRL_CHECK_LEAF``): OpenSSL checks only at
the handshake, so a client holding a keep-alive connection would go on being served, an
``SSLContext`` cannot drop a CRL it has loaded, and with the flag set every handshake fails
while no CRL exists.

A CRL whose signature does not verify with the CA certificate, or that cannot be read, is
ignored with a warning and the last good one stays in force; so does a CRL file removed
after it was read (removing it must not un-revoke anyone). A CRL past its next update is
still applied: an old list of revocations is better than none.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from qkdnet.errors import ParameterError
from qkdnet.live.pki import Pki

__all__ = ["CHECK_EVERY_S", "CRL_VALIDITY_DAYS", "RevocationWatch", "revoke"]

log = logging.getLogger(__name__)

CRL_VALIDITY_DAYS = 365
"""Days from a CRL's issue to its next update."""

CHECK_EVERY_S = 1.0
"""Least time between two looks at the CRL file by a :class:`RevocationWatch` (s): how long
a new CRL may wait before requests are checked against it."""


def revoke(pki: Pki, sae_id: str, copy_to: Sequence[Path] = ()) -> x509.CertificateRevocationList:
    """Revoke SAE ``sae_id``'s certificate: ``pki.crl`` lists its serial (and every serial
    it listed before), signed by the CA; also written to each of ``copy_to``.

    Needs ``pki.ca_key`` (ParameterError naming it if absent). Revoking twice is harmless.
    """
    if not pki.ca_key.is_file():
        raise ParameterError("--dir", pki.folder, "holds no ca.key: revoke where the CA "
                             "lives (the folder `qkdnet pki init` made)")
    cert = x509.load_pem_x509_certificate(pki.sae_cert(sae_id).read_bytes())
    ca_cert = x509.load_pem_x509_certificate(pki.ca_cert.read_bytes())
    ca_key = serialization.load_pem_private_key(pki.ca_key.read_bytes(), password=None)
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise ParameterError("ca.key", pki.ca_key, "must be an EC private key")
    now = dt.datetime.now(dt.UTC)
    builder = (x509.CertificateRevocationListBuilder().issuer_name(ca_cert.subject)
               .last_update(now).next_update(now + dt.timedelta(days=CRL_VALIDITY_DAYS)))
    old = _read_crl(pki.crl, ca_cert)
    listed = {entry.serial_number for entry in old} if old is not None else set()
    for entry in old or ():
        builder = builder.add_revoked_certificate(entry)
    if cert.serial_number not in listed:
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(cert.serial_number)
            .revocation_date(now).build())
    crl = builder.sign(ca_key, hashes.SHA256())
    pem = crl.public_bytes(serialization.Encoding.PEM)
    for path in (pki.crl, *copy_to):
        _write_atomically(Path(path), pem)
    return crl


class RevocationWatch:
    """The serials revoked by the CRL at ``crl`` (signed by the CA at ``ca_cert``), re-read
    when the file has changed, looked at no more often than every ``check_every_s`` (s) of
    ``clock`` (a monotonic clock in s; 0 looks at every call)."""

    def __init__(self, crl: Path, ca_cert: Path, check_every_s: float = CHECK_EVERY_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.crl = Path(crl)
        self.check_every_s = check_every_s
        self._clock = clock
        self._ca = x509.load_pem_x509_certificate(Path(ca_cert).read_bytes())
        self._seen: tuple[int, int, int] | None = None  # inode, size, mtime (ns) read last
        self._revoked: frozenset[int] = frozenset()
        self._next_look = clock() + check_every_s
        self._refresh()

    @classmethod
    def of_pki(cls, pki: Pki, check_every_s: float = CHECK_EVERY_S) -> RevocationWatch:
        """The watch of a PKI folder's ``crl.pem``."""
        return cls(pki.crl, pki.ca_cert, check_every_s)

    def is_revoked(self, serial: int) -> bool:
        """Whether the CRL lists ``serial`` (looking first whether the file changed, if the
        last look is ``check_every_s`` old)."""
        now = self._clock()
        if now >= self._next_look:
            self._next_look = now + self.check_every_s
            self._refresh()
        return serial in self._revoked

    def _refresh(self) -> None:
        try:
            st = os.stat(self.crl)
        except FileNotFoundError:
            return  # none yet, or removed: the last good list stays in force
        except OSError as exc:
            log.warning("CRL %s cannot be read (%s); the last one read stays in force",
                        self.crl, exc.strerror)
            return
        seen = (st.st_ino, st.st_size, st.st_mtime_ns)
        if seen == self._seen:
            return
        self._seen = seen
        crl = _read_crl(self.crl, self._ca)
        if crl is None:
            log.warning("CRL %s is unreadable or not signed by the CA; the last one read "
                        "stays in force", self.crl)
            return
        self._revoked = frozenset(entry.serial_number for entry in crl)
        log.info("CRL %s: %d revoked certificates", self.crl, len(self._revoked))


def _read_crl(path: Path, ca_cert: x509.Certificate) -> x509.CertificateRevocationList | None:
    """The CRL at ``path`` if it exists, parses and is signed by ``ca_cert``; else None."""
    try:
        crl = x509.load_pem_x509_crl(path.read_bytes())
    except (OSError, ValueError):
        return None
    public = ca_cert.public_key()
    if crl.issuer != ca_cert.subject or not isinstance(public, ec.EllipticCurvePublicKey):
        return None
    return crl if crl.is_signature_valid(public) else None


def _write_atomically(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` by a rename, so that a KME re-reading it never sees half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)

