"""The test PKI: certificates chain to the CA, name their SAE or KME as documented, keys
stay private, and an existing PKI is never overwritten by accident."""

from __future__ import annotations

import datetime as dt
import ipaddress
import re
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from qkdnet.errors import ParameterError
from qkdnet.live.pki import (
    NotAnSae,
    Pki,
    copy_public_pki,
    identify_sae,
    init_pki,
    kme_id_from_certificate,
    load_pki,
    sae_id_from_certificate,
)

KMES = ("A", "node-2")
SAES = ("alice", "bob_1.x")


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return init_pki(tmp_path_factory.mktemp("pki"), KMES, SAES)


def _cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def _der(path: Path) -> bytes:
    return _cert(path).public_bytes(serialization.Encoding.DER)


def _self_signed(names: list[x509.NameAttribute[str]], uris: list[str]) -> bytes:
    """A DER certificate made by some other tool, with the given subject and URI SANs."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    builder = (x509.CertificateBuilder().subject_name(x509.Name(names))
               .issuer_name(x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "other")]))
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now).not_valid_after(now + dt.timedelta(days=1)))
    if uris:
        builder = builder.add_extension(x509.SubjectAlternativeName(
            [x509.UniformResourceIdentifier(u) for u in uris]), critical=False)
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)


def test_the_layout_is_as_documented(pki: Pki) -> None:
    """ca.crt/ca.key, kme/<id>.crt|.key and sae/<id>.crt|.key, all PEM."""
    assert pki.ca_cert == pki.folder / "ca.crt" and pki.ca_key == pki.folder / "ca.key"
    assert pki.kme_cert("A") == pki.folder / "kme" / "A.crt"
    assert pki.sae_key("bob_1.x") == pki.folder / "sae" / "bob_1.x.key"
    for path in [pki.ca_cert, *map(pki.kme_cert, KMES), *map(pki.sae_cert, SAES)]:
        assert path.read_bytes().startswith(b"-----BEGIN CERTIFICATE-----")
    for path in [pki.ca_key, *map(pki.kme_key, KMES), *map(pki.sae_key, SAES)]:
        assert path.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")


def test_every_certificate_chains_to_the_ca(pki: Pki) -> None:
    """Each KME and SAE certificate is signed by the CA, which is a CA."""
    ca = _cert(pki.ca_cert)
    constraints = ca.extensions.get_extension_for_class(x509.BasicConstraints).value
    assert constraints.ca
    for path in [*map(pki.kme_cert, KMES), *map(pki.sae_cert, SAES)]:
        _cert(path).verify_directly_issued_by(ca)


def test_each_key_matches_its_certificate(pki: Pki) -> None:
    """The key file holds the private half of the certificate's public key."""
    for cert, key in [(pki.kme_cert(k), pki.kme_key(k)) for k in KMES] + [
            (pki.sae_cert(s), pki.sae_key(s)) for s in SAES]:
        private = serialization.load_pem_private_key(key.read_bytes(), password=None)
        assert private.public_key() == _cert(cert).public_key()


def test_private_keys_are_readable_by_the_owner_only(pki: Pki) -> None:
    """Every key file has mode 0600."""
    for path in [pki.ca_key, *map(pki.kme_key, KMES), *map(pki.sae_key, SAES)]:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path


@pytest.mark.parametrize("sae", SAES)
def test_the_sae_id_round_trips(pki: Pki, sae: str) -> None:
    """An SAE certificate gives back its SAE ID."""
    assert sae_id_from_certificate(_der(pki.sae_cert(sae))) == sae


def test_an_sae_certificate_carries_cn_uri_and_client_auth(pki: Pki) -> None:
    """CN = SAE ID, URI SAN sae-id:<SAE ID>, extended key usage clientAuth only."""
    cert = _cert(pki.sae_cert("alice"))
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "alice"
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.UniformResourceIdentifier) == ["sae-id:alice"]
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]


def test_a_kme_certificate_serves_localhost_and_names_its_node(pki: Pki) -> None:
    """CN = node id, SAN localhost, 127.0.0.1 and kme-id:<id>, serverAuth and clientAuth."""
    cert = _cert(pki.kme_cert("node-2"))
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "node-2"
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.IPv4Address("127.0.0.1")]
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert set(eku) == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
    assert kme_id_from_certificate(_der(pki.kme_cert("node-2"))) == "node-2"


def test_a_kme_certificate_is_not_taken_for_an_sae(pki: Pki) -> None:
    """A KME calling as a client is not identified as the SAE named like its node."""
    assert sae_id_from_certificate(_der(pki.kme_cert("A"))) is None
    assert kme_id_from_certificate(_der(pki.sae_cert("alice"))) is None


def test_other_certificates_are_read_by_uri_then_cn() -> None:
    """The sae-id: URI wins over the CN; without it the CN is the SAE ID; else None."""
    cn = [x509.NameAttribute(NameOID.COMMON_NAME, "from-cn")]
    org = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, "no cn")]
    assert sae_id_from_certificate(_self_signed(cn, ["sae-id:from-uri"])) == "from-uri"
    assert sae_id_from_certificate(_self_signed(cn, ["https://example.org/x"])) == "from-cn"
    assert sae_id_from_certificate(_self_signed(cn, [])) == "from-cn"
    assert sae_id_from_certificate(_self_signed(org, [])) is None
    assert sae_id_from_certificate(_self_signed(cn, ["sae-id:one", "sae-id:two"])) is None


def test_garbage_is_not_a_certificate() -> None:
    """Bytes that are not DER identify nobody."""
    assert sae_id_from_certificate(b"not a certificate") is None
    assert kme_id_from_certificate(b"") is None


def test_validity_is_the_number_of_days_asked(tmp_path: Path) -> None:
    """Certificates run for validity_days from (a few minutes before) now."""
    pki = init_pki(tmp_path, ["A"], ["s"], validity_days=3)
    cert = _cert(pki.sae_cert("s"))
    span = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert dt.timedelta(days=3) <= span <= dt.timedelta(days=3, minutes=10)
    assert cert.not_valid_before_utc < dt.datetime.now(dt.UTC)
    with pytest.raises(ParameterError, match="validity_days"):
        init_pki(tmp_path / "other", ["A"], ["s"], validity_days=0)


def test_load_finds_what_init_wrote(pki: Pki) -> None:
    """load_pki gives the same Pki as init_pki, ids sorted."""
    assert load_pki(pki.folder) == pki
    assert pki.kme_ids == KMES and pki.sae_ids == SAES


def test_load_needs_no_ca_key(pki: Pki, tmp_path: Path) -> None:
    """A serving node's copy, without ca.key, loads with every KME and SAE."""
    copy = copy_public_pki(pki, tmp_path / "served")
    assert not copy.ca_key.exists()
    assert (copy.kme_ids, copy.sae_ids) == (KMES, SAES)
    assert stat.S_IMODE(copy.kme_key("A").stat().st_mode) == 0o600


def test_load_refuses_a_folder_without_a_pki(tmp_path: Path) -> None:
    """No ca.crt: ParameterError naming the folder."""
    with pytest.raises(ParameterError, match=re.escape(str(tmp_path))):
        load_pki(tmp_path)


def test_unknown_ids_are_refused(pki: Pki) -> None:
    """Asking for a party the PKI does not hold names the known ones."""
    with pytest.raises(ParameterError, match=re.escape("known: alice, bob_1.x")):
        pki.sae_cert("carol")
    with pytest.raises(ParameterError, match="kme_id"):
        pki.kme_key("alice")


def test_an_existing_pki_is_not_overwritten(tmp_path: Path) -> None:
    """A second init_pki in the same folder fails, naming it, and changes nothing."""
    first = init_pki(tmp_path, ["A"], ["alice"])
    ca = first.ca_cert.read_bytes()
    with pytest.raises(ParameterError, match=re.escape(str(tmp_path))):
        init_pki(tmp_path, ["A"], ["alice"])
    assert first.ca_cert.read_bytes() == ca


def test_overwrite_replaces_the_whole_pki(tmp_path: Path) -> None:
    """With overwrite=True a new CA is made and parties no longer listed are gone."""
    old_ca = init_pki(tmp_path, ["A"], ["alice", "bob"]).ca_cert.read_bytes()
    (tmp_path / "notes.txt").write_text("kept")
    second = init_pki(tmp_path, ["A"], ["alice"], overwrite=True)
    assert second.ca_cert.read_bytes() != old_ca
    assert not (tmp_path / "sae" / "bob.crt").exists()
    assert load_pki(tmp_path) == second
    assert (tmp_path / "notes.txt").read_text() == "kept"


def test_a_folder_with_other_files_is_accepted(tmp_path: Path) -> None:
    """Only PKI files count as an existing PKI."""
    (tmp_path / "scenario.yaml").write_text("name: x\n")
    assert init_pki(tmp_path, ["A"], []).kme_ids == ("A",)


@pytest.mark.parametrize("bad", ["", "a/b", "../x", "a b", "é", "x" * 65, "a\n"])
def test_ids_unfit_for_file_names_are_refused(tmp_path: Path, bad: str) -> None:
    """Only 1 to 64 of A-Z a-z 0-9 . _ - ; nothing is written."""
    with pytest.raises(ParameterError, match="sae_ids"):
        init_pki(tmp_path, ["A"], ["ok", bad])
    with pytest.raises(ParameterError, match="kme_ids"):
        init_pki(tmp_path, [bad], [])
    assert not any(tmp_path.iterdir())


def test_one_string_is_not_a_list_of_ids(tmp_path: Path) -> None:
    """init_pki(folder, "AB", ...) is a mistake, not KMEs A and B."""
    with pytest.raises(ParameterError, match="kme_ids"):
        init_pki(tmp_path, "AB", [])


def _signed(pki: Pki, *, uris: list[str], eku: list[x509.ObjectIdentifier] | None,
            ca: bool = False, cn: str = "alice") -> bytes:
    """A DER client certificate issued by ``pki``'s CA."""
    ca_cert = _cert(pki.ca_cert)
    ca_key = serialization.load_pem_private_key(pki.ca_key.read_bytes(), None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    builder = (x509.CertificateBuilder()
               .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
               .issuer_name(ca_cert.subject).public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(now).not_valid_after(now + dt.timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if uris:
        builder = builder.add_extension(x509.SubjectAlternativeName(
            [x509.UniformResourceIdentifier(u) for u in uris]), critical=False)
    if eku is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage(eku), critical=False)
    return builder.sign(ca_key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)


CLIENT = [ExtendedKeyUsageOID.CLIENT_AUTH]


def test_a_kme_accepts_the_sae_certificates_pki_init_makes(pki: Pki) -> None:
    """identify_sae gives the SAE ID of every SAE certificate init_pki issued."""
    for sae in SAES:
        assert identify_sae(_der(pki.sae_cert(sae))) == sae


@pytest.mark.parametrize(("uris", "eku", "ca", "problem"), [
    (["sae-id:alice"], None, False, "clientAuth"),
    (["sae-id:alice"], [ExtendedKeyUsageOID.SERVER_AUTH], False, "clientAuth"),
    (["sae-id:alice"], CLIENT, True, "CA certificate"),
    ([], CLIENT, False, "--allow-cn-identity"),
    (["sae-id:a", "sae-id:b"], CLIENT, False, "several"),
    (["kme-id:A"], CLIENT, False, "KME"),
])
def test_a_kme_refuses_improper_client_certificates(
        pki: Pki, uris: list[str], eku: list[x509.ObjectIdentifier] | None, ca: bool,
        problem: str) -> None:
    """No clientAuth, a CA certificate, CN only, several or a KME's identity: NotAnSae
    naming the problem."""
    with pytest.raises(NotAnSae, match=re.escape(problem)):
        identify_sae(_signed(pki, uris=uris, eku=eku, ca=ca))


def test_a_cn_only_identity_counts_only_when_allowed(pki: Pki) -> None:
    """CN-only: refused by default, the CN with allow_cn_identity; the URI still wins."""
    der = _signed(pki, uris=[], eku=CLIENT, cn="bob_1.x")
    assert identify_sae(der, allow_cn_identity=True) == "bob_1.x"
    with_uri = _signed(pki, uris=["sae-id:alice"], eku=CLIENT, cn="bob_1.x")
    assert identify_sae(with_uri, allow_cn_identity=True) == "alice"
    with pytest.raises(NotAnSae, match="cannot be parsed"):
        identify_sae(b"garbage", allow_cn_identity=True)


def test_kme_certificates_name_the_served_addresses(tmp_path: Path) -> None:
    """kme_names: IPs become IP SANs, names DNS SANs; 0.0.0.0 is skipped; localhost stays."""
    pki = init_pki(tmp_path, ["A"], [],
                   kme_names=["10.1.2.3", "KME.example.org", "0.0.0.0", "::1", "127.0.0.1"])
    san = _cert(pki.kme_cert("A")).extensions.get_extension_for_class(
        x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["localhost", "kme.example.org"]
    assert san.get_values_for_type(x509.IPAddress) == [
        ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("10.1.2.3"),
        ipaddress.ip_address("::1")]


def test_a_bad_kme_name_is_refused(tmp_path: Path) -> None:
    """A name that is neither an IP address nor a host name: ParameterError naming it."""
    with pytest.raises(ParameterError, match="kme_names"):
        init_pki(tmp_path, ["A"], [], kme_names=["bad name/x"])
