"""Events, messages and actions of the Key Manager (ITU-T Y.3803 key relay).

Events come in (a key request from the local KME, a message from another KM, a timer),
actions go out (send a message, start a timer, hand a key to the KME). All are small
immutable records; none of their reprs shows key material or ciphertext.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

from qkdnet.keys.pool import UnitRange
from qkdnet.keys.route import Route

# --- events ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class KeyRequest:
    """From the local KME: make one key of ``size_bits`` per key_ID in ``key_ids`` for the
    SAE pair and bring them to the slave's node along ``route``, together in one relay
    (named by its first key_ID)."""

    key_ids: tuple[str, ...]
    size_bits: int
    master_sae: str
    slave_sae: str
    route: Route

    @property
    def relay_id(self) -> str:
        return self.key_ids[0]


@dataclass(frozen=True, slots=True)
class TimerExpired:
    """A timer the KM started has run out."""

    tag: str


# --- messages between KMs ------------------------------------------------------------------


class ForwardKey(NamedTuple):
    """Hop ``hop`` of a relay: the keys padded with units ``pad`` of ``route.km_links[hop]``,
    authenticated with a one-time MAC key from the same pad.

    A named tuple rather than a frozen dataclass: one is made at every hop of every relay,
    and a tuple is made four times as fast; it is as immutable."""

    key_ids: tuple[str, ...]
    size_bits: int
    master_sae: str
    slave_sae: str
    route: Route
    hop: int
    pad: tuple[UnitRange, ...]
    ciphertext: bytes
    tag: bytes

    @property
    def relay_id(self) -> str:
        return self.key_ids[0]

    def __repr__(self) -> str:  # no ciphertext or tag in logs and tracebacks
        return (f"ForwardKey(key_ids={self.key_ids!r}, size_bits={self.size_bits}, "
                f"master_sae={self.master_sae!r}, slave_sae={self.slave_sae!r}, "
                f"route={self.route!r}, hop={self.hop}, pad={self.pad!r})")


@dataclass(frozen=True, slots=True)
class RelayComplete:
    """Destination to source: the keys of relay ``relay_id`` are held; ``tag`` proves the
    destination knows them."""

    relay_id: str
    tag: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class RelayFailed:
    """To the source: the relay stopped at ``node`` for ``reason``; nothing was delivered."""

    relay_id: str
    node: str
    reason: str


@dataclass(frozen=True, slots=True)
class RelayAbort:
    """Source to destination: the source gave up; drop the keys if they arrive or are
    held."""

    key_ids: tuple[str, ...]
    master_sae: str
    slave_sae: str


Message = ForwardKey | RelayComplete | RelayFailed | RelayAbort


@dataclass(frozen=True, slots=True)
class Received:
    """A message from KM ``sender`` arrived."""

    sender: str
    message: Message


Event = KeyRequest | Received | TimerExpired


# --- actions -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Send:
    """Deliver ``message`` to the KM at node ``to``."""

    to: str
    message: Message


@dataclass(frozen=True, slots=True)
class StartTimer:
    """Feed ``TimerExpired(tag)`` back at ``deadline`` (s, the driver's clock)."""

    tag: str
    deadline: float


@dataclass(frozen=True, slots=True)
class KeyDelivered:
    """For the KME: the keys of relay ``relay_id`` are held at the slave's node; hand
    ``material`` (the keys one after another) to the master."""

    relay_id: str
    material: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class KeyFailed:
    """For the KME: relay ``relay_id`` delivered nothing; the slave's node holds none of
    its keys."""

    relay_id: str
    reason: str


Action = Send | StartTimer | KeyDelivered | KeyFailed
