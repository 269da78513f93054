"""Faults an operator injects into the live network (``qkdnet fault``, the console): cut
or blinded QKD-links and stopped nodes, and which QKD-links therefore make no key."""

from __future__ import annotations

from qkdnet.errors import ParameterError
from qkdnet.topology.model import Network


class OperatorFaults:
    """The faults injected into ``network`` now."""

    def __init__(self, network: Network) -> None:
        self.network = network
        self.cut_links: set[str] = set()  # QKD-links an operator has cut: they make no key
        self.stopped_nodes: set[str] = set()  # nodes whose KM an operator has stopped
        # QKD-links whose detector-current monitor tripped (a blinding attack, injected):
        # the devices stop distilling, as key from blinded detectors cannot be trusted
        self.blinded_links: set[str] = set()
        self._links_of: dict[str, list[str]] = {n.id: [] for n in network.nodes}
        for lk in network.qkd_links:
            self._links_of[lk.a].append(lk.id)
            self._links_of[lk.b].append(lk.id)

    def down_links(self) -> set[str]:
        """The QKD-links that make no key: those cut or blinded and those of stopped
        nodes."""
        down = self.cut_links | self.blinded_links
        for node in self.stopped_nodes:
            down.update(self._links_of[node])
        return down

    def cut(self, link: str, cut: bool = True) -> None:
        """Cut QKD-link ``link`` (no key is made on it, its KM-links report down) or, with
        ``cut`` False, repair it (which also ends a blinding)."""
        self._check_link(link)
        if cut:
            self.cut_links.add(link)
        else:
            self.cut_links.discard(link)
            self.blinded_links.discard(link)

    def blind(self, link: str) -> None:
        """Shine bright light at QKD-link ``link``'s detectors: the detector-current monitor
        trips and the link makes no key until :meth:`cut` repairs it."""
        self._check_link(link)
        self.blinded_links.add(link)

    def stop(self, node: str, stop: bool = True) -> None:
        """Stop node ``node`` (its Key Manager and QKD devices: its QKD-links make no key, its
        KM-links report down, its KME answers 503, messages to it are lost) or, with
        ``stop`` False, start it again with the key its store kept."""
        if node not in self.network.node:
            raise ParameterError("node", node, "the id of a node of the network")
        if stop:
            self.stopped_nodes.add(node)
        else:
            self.stopped_nodes.discard(node)

    def _check_link(self, link: str) -> None:
        if link not in self.network.link:
            raise ParameterError("link", link, "the id of a QKD-link of the network")
