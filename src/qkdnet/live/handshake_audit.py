"""TLS handshakes a KME refuses, written to the audit log, at a bounded rate.

A client certificate from another CA, an expired one, one without EKU clientAuth, or none at
all fails the KME's TLS handshake, before any HTTP: the app never sees the call, so the
refusal is caught where the handshake runs: the server starts TLS on each accepted
connection itself (``loop.start_tls`` in ``live/tls_server.py``, on asyncio's loop and on
uvloop's alike), so a failed handshake raises there, with the connection's peer address at
hand, and the server hands both to :meth:`HandshakeRefusals.handshake_failed`. That writes
one ``tls-handshake-refused`` line per refusal: ``who`` (the SAE or subject the certificate
names, when the ``ssl`` module can show it: Python >= 3.13; else null), ``from`` (the peer's
address and port), ``kme``, ``reason`` (OpenSSL's words: "certificate has expired",
"unsuitable certificate purpose", "PEER_DID_NOT_RETURN_A_CERTIFICATE"...). ``who`` comes
from the failed ``ssl.SSLObject`` itself: :func:`name_refused_certificates` sets the
context's ``sslobject_class`` to a subclass whose ``do_handshake`` pins the name to the
error it raises (both loops make their ``SSLObject`` with the context's ``wrap_bio``).

Bounded: per client address (IP) at most :data:`LINES_PER_ADDRESS` lines, and in all at
most :data:`LINES_PER_WINDOW`, every :data:`WINDOW_S`; refusals beyond are counted, and when
the window ends one summary line per address (``"more": n``, at most
:data:`SUMMARY_ADDRESSES` addresses, the others summed in one line with ``from``
``"other addresses"``) says how many were not written. So a flood of bad handshakes adds at
most LINES_PER_WINDOW + SUMMARY_ADDRESSES + 1 lines a window, whatever its size and spread.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509
from cryptography.x509.oid import NameOID

from qkdnet.live.audit import AuditLog

log = logging.getLogger(__name__)

EVENT = "tls-handshake-refused"
#: Length of a rate window (s).
WINDOW_S = 60.0
#: Lines written for one client address in a window; later refusals are counted.
LINES_PER_ADDRESS = 5
#: Lines written for all addresses together in a window.
LINES_PER_WINDOW = 60
#: Addresses that get a summary line of their own at the end of a window.
SUMMARY_ADDRESSES = 64
OTHERS = "other addresses"
#: The attribute of a failed handshake's ``ssl.SSLError`` that holds what the client
#: certificate names (see :func:`name_refused_certificates`).
WHO_ATTRIBUTE = "qkdnet_who"


@dataclass
class HandshakeRefusals:
    """Writes refused handshakes to ``audit``, bounded per address and in all per window
    (times in s of ``clock``)."""

    audit: AuditLog
    clock: Callable[[], float] = time.monotonic
    window_start: float | None = None
    written: dict[str, int] = field(default_factory=dict)
    suppressed: dict[str, int] = field(default_factory=dict)
    _flush_timer: asyncio.TimerHandle | None = None

    def refused(self, kme: str, peer: Any, reason: str, who: str | None) -> None:
        """A handshake at KME ``kme`` from ``peer`` (a socket address, or None) failed for
        ``reason``; ``who``: what its certificate names, if known."""
        now = self.clock()
        if self.window_start is None or now - self.window_start >= WINDOW_S:
            self.flush()
            self.window_start = now
        host, where = _address(peer)
        mine = self.written.get(host, 0)
        if mine < LINES_PER_ADDRESS and sum(self.written.values()) < LINES_PER_WINDOW:
            self.written[host] = mine + 1
            self.audit.record(EVENT, who, where, kme=kme, reason=reason)
            return
        key = host if host in self.suppressed or len(self.suppressed) < SUMMARY_ADDRESSES \
            else OTHERS
        self.suppressed[key] = self.suppressed.get(key, 0) + 1
        self._flush_later(now)

    def handshake_failed(self, kme: str, peer: Any, exc: ssl.SSLError) -> None:
        """The TLS handshake at KME ``kme`` from ``peer`` failed with ``exc``: a refusal
        (``who`` as :func:`name_refused_certificates` pinned it, if it did)."""
        self.refused(kme, peer, _reason(exc), getattr(exc, WHO_ATTRIBUTE, None))

    def flush(self) -> None:
        """Write the summary lines of the window that is ending, and start afresh."""
        if self._flush_timer is not None:
            self._flush_timer.cancel()
            self._flush_timer = None
        for host, count in self.suppressed.items():
            self.audit.record(EVENT, None, host, more=count,
                              reason=f"{count} more refused handshakes in {WINDOW_S:.0f} s, "
                                     "not written one by one")
        self.suppressed.clear()
        self.written.clear()
        self.window_start = None

    def _flush_later(self, now: float) -> None:
        """Make sure the summary is written when the window ends, even if no refusal
        comes after it (only inside a running event loop, where the servers run)."""
        if self._flush_timer is not None or self.window_start is None:
            return
        with contextlib.suppress(RuntimeError):
            loop = asyncio.get_running_loop()
            self._flush_timer = loop.call_later(
                max(0.0, self.window_start + WINDOW_S - now), self.flush)


def audited(tls: ssl.SSLContext, refusals: HandshakeRefusals, service: str
            ) -> Callable[[Any, ssl.SSLError], None]:
    """What a mutual-TLS server of ``service`` (a KME's node, the controller, an EMS, the
    NMS) is given as ``on_handshake_refused``: each refusal written by ``refusals`` under
    the service's name, ``who`` pinned as :func:`name_refused_certificates` does."""
    name_refused_certificates(tls)
    return functools.partial(refusals.handshake_failed, service)


def _address(peer: Any) -> tuple[str, str]:
    """The client's host (the rate key) and host:port (the line's ``from``)."""
    if isinstance(peer, tuple) and len(peer) >= 2:
        return str(peer[0]), f"{peer[0]}:{peer[1]}"
    return "unknown", "unknown"


def _reason(exc: ssl.SSLError) -> str:
    if isinstance(exc, ssl.SSLCertVerificationError) and exc.verify_message:
        return f"certificate verify failed: {exc.verify_message}"
    return str(exc.reason or exc)


def _named(sslobj: ssl.SSLObject) -> str | None:
    """The SAE ID (URI SAN ``sae-id:``) or else the subject of the client certificate of a
    failed handshake; None where this Python cannot show it (before 3.13) or none came."""
    chain = getattr(sslobj, "get_verified_chain", None)
    if chain is None:
        return None
    try:
        certs = chain()
        if not certs:
            return None
        cert = x509.load_pem_x509_certificate(str(certs[0].public_bytes()).encode())  # PEM
        with contextlib.suppress(x509.ExtensionNotFound):
            san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
            for uri in san.value.get_values_for_type(x509.UniformResourceIdentifier):
                if uri.startswith("sae-id:"):
                    return uri.removeprefix("sae-id:")
        names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        return str(names[0].value) if names else cert.subject.rfc4514_string()
    except (ValueError, TypeError, AttributeError, ssl.SSLError):
        return None


def name_refused_certificates(context: ssl.SSLContext) -> None:
    """Make every handshake ``context`` (a server's) fails carry, on the ``ssl.SSLError``
    it raises, what the client certificate names (attribute :data:`WHO_ATTRIBUTE`; None
    where this Python cannot show it); the handshake fails as before."""

    class NamingSSLObject(ssl.SSLObject):
        def do_handshake(self) -> None:
            try:
                super().do_handshake()
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                raise
            except ssl.SSLError as exc:
                try:
                    setattr(exc, WHO_ATTRIBUTE, _named(self))
                except Exception:  # the audit must never change the handshake's outcome
                    log.exception("cannot name the certificate of a refused TLS handshake")
                raise

    context.sslobject_class = NamingSSLObject
