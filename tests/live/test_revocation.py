"""The CRL: revoke() signs and accumulates serials, RevocationWatch re-reads it on change
and never lets a forged, broken or deleted CRL undo a revocation."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from qkdnet.errors import ParameterError
from qkdnet.live.pki import Pki, copy_public_pki, init_pki
from qkdnet.live.revocation import RevocationWatch, revoke


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return init_pki(tmp_path / "ca", ["A"], ["alice", "bob", "carol"])


def _serial(pki: Pki, sae: str) -> int:
    return x509.load_pem_x509_certificate(pki.sae_cert(sae).read_bytes()).serial_number


def test_revoke_writes_a_crl_signed_by_the_ca_that_accumulates(pki: Pki) -> None:
    """Two revocations: the CRL lists both serials (once each) and verifies with the CA."""
    revoke(pki, "alice")
    revoke(pki, "bob")
    revoke(pki, "bob")
    crl = x509.load_pem_x509_crl(pki.crl.read_bytes())
    ca = x509.load_pem_x509_certificate(pki.ca_cert.read_bytes())
    public = ca.public_key()
    assert isinstance(public, ec.EllipticCurvePublicKey)
    assert crl.is_signature_valid(public)
    assert sorted(e.serial_number for e in crl) == sorted(
        [_serial(pki, "alice"), _serial(pki, "bob")])


def test_revoke_needs_the_ca_key(pki: Pki, tmp_path: Path) -> None:
    """On a serving node's copy (no ca.key): ParameterError saying so, nothing written."""
    served = copy_public_pki(pki, tmp_path / "served")
    with pytest.raises(ParameterError, match=re.escape("holds no ca.key")):
        revoke(served, "alice")
    assert not served.crl.exists()


def test_the_watch_sees_a_new_crl_without_restart(pki: Pki, tmp_path: Path) -> None:
    """A watch made before any CRL picks up each copy written later."""
    served = copy_public_pki(pki, tmp_path / "served")
    watch = RevocationWatch.of_pki(served, check_every_s=0)
    assert not watch.is_revoked(_serial(pki, "alice"))
    revoke(pki, "alice", copy_to=[served.crl])
    assert watch.is_revoked(_serial(pki, "alice"))
    assert not watch.is_revoked(_serial(pki, "bob"))
    revoke(pki, "bob", copy_to=[served.crl])
    assert watch.is_revoked(_serial(pki, "bob"))


def test_the_watch_looks_at_the_file_at_most_once_a_period(pki: Pki, tmp_path: Path) -> None:
    """A CRL written within the period after the last look counts from the first call a
    period after that look, not before (the watch's clock is the test's)."""
    served = copy_public_pki(pki, tmp_path / "served")
    now = [100.0]
    watch = RevocationWatch(served.crl, served.ca_cert, check_every_s=1.0,
                            clock=lambda: now[0])
    alice = _serial(pki, "alice")
    now[0] = 101.0
    assert not watch.is_revoked(alice)  # looked: no CRL yet
    revoke(pki, "alice", copy_to=[served.crl])
    now[0] = 101.9
    assert not watch.is_revoked(alice)  # within the period: the file is not looked at
    now[0] = 102.0
    assert watch.is_revoked(alice)


def test_a_forged_or_broken_crl_keeps_the_last_good_one(pki: Pki, tmp_path: Path) -> None:
    """A CRL signed by another CA, garbage, or no file at all: the revocations stand."""
    served = copy_public_pki(pki, tmp_path / "served")
    revoke(pki, "alice", copy_to=[served.crl])
    watch = RevocationWatch.of_pki(served, check_every_s=0)
    alice = _serial(pki, "alice")
    other = init_pki(tmp_path / "other", ["A"], ["alice"])
    forged = revoke(other, "alice")  # a CRL of the same form, from a stranger's CA
    served.crl.write_bytes(forged.public_bytes(serialization.Encoding.PEM))
    assert watch.is_revoked(alice)
    served.crl.write_bytes(b"not a CRL")
    assert watch.is_revoked(alice)
    os.unlink(served.crl)
    assert watch.is_revoked(alice)
