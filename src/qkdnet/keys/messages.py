"""Events, messages and actions of the Key Manager (ITU-T Y.3803 key relay).

Events come in (a key request from the local KME, a message from another KM, a timer),
actions go out (send a message, start a timer, hand a key to the KME). All are small frozen
records; none of their reprs shows key material or ciphertext.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from qkdnet.keys.pool import UnitRange


@dataclass(frozen=True, slots=True)
class Route:
    """A relay path: ``nodes[i]`` and ``nodes[i + 1]`` share KM-link ``km_links[i]``."""

    nodes: tuple[str, ...]
    km_links: tuple[str, ...]

    def __post_init__(self) -> None:
        if len(self.nodes) != len(self.km_links) + 1 or not self.nodes:
            raise ValueError("a route has one KM-link fewer than nodes, and at least one node")

    @property
    def source(self) -> str:
        return self.nodes[0]

    @property
    def destination(self) -> str:
        return self.nodes[-1]

    @property
    def hops(self) -> int:
        return len(self.km_links)


# --- events ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class KeyRequest:
    """From the local KME: make a key of ``size_bits`` for the SAE pair and bring it to the
    slave's node along ``route`` under ``key_id``."""

    key_id: str
    size_bits: int
    master_sae: str
    slave_sae: str
    route: Route


@dataclass(frozen=True, slots=True)
class TimerExpired:
    """A timer the KM started has run out."""

    tag: str


# --- messages between KMs ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ForwardKey:
    """Hop ``hop`` of a relay: the key padded with units ``pad`` of ``route.km_links[hop]``,
    authenticated with a one-time MAC key from the same pad."""

    key_id: str
    size_bits: int
    master_sae: str
    slave_sae: str
    route: Route
    hop: int
    pad: tuple[UnitRange, ...]
    ciphertext: bytes = field(repr=False)
    tag: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class RelayComplete:
    """Destination to source: the key is held under ``key_id``; ``tag`` proves the
    destination knows the key."""

    key_id: str
    tag: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class RelayFailed:
    """To the source: the relay stopped at ``node`` for ``reason``; nothing was delivered."""

    key_id: str
    node: str
    reason: str


@dataclass(frozen=True, slots=True)
class RelayAbort:
    """Source to destination: the source gave up; drop the key if it arrives or is held."""

    key_id: str
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
    """For the KME: the key is held at the slave's node; hand ``material`` to the master."""

    key_id: str
    material: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class KeyFailed:
    """For the KME: no key under ``key_id``; the slave's node holds nothing for it."""

    key_id: str
    reason: str


Action = Send | StartTimer | KeyDelivered | KeyFailed
