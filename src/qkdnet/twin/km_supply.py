"""Which fibre KM-links the twin keeps pools for, and how the QKD-links' key reaches them.

A QKD-link's key feeds its direct KM-link when it has one (the KMs at both ends pool it).
A QKD-link with no direct KM-link has only relay devices at its ends, no KM: its key is
handed on along the remote KM-links over it (shared equally between them), and a remote
KM-link gets the key of its slowest hop (a chain of trusted relays passes on no more than
its weakest link makes). A remote KM-link over a QKD-link that already feeds a direct
KM-link gets nothing from it, so it is left out, as satellite KM-links are in a run
without satellites: on cn-qcn, whose chains have a direct KM-link on every hop, the pools
are the direct KM-links alone; on ``examples/three-city-ring.yaml`` the remote KM-links
between the access nodes carry all the key of their chains.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from qkdnet.topology.model import KMLink, KMLinkKind, Network

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
IndexArray = npt.NDArray[np.intp]


@dataclass(frozen=True)
class KMSupply:
    """The fed KM-links (direct ones in QKD-link order, then the remote ones in the
    network's order) and, per KM-link, the QKD-link columns of its path."""

    km_links: tuple[KMLink, ...]
    paths: tuple[IndexArray, ...]
    #: Per QKD-link column: the KM-link rows it feeds.
    feeds: tuple[tuple[int, ...], ...]
    _direct_rows: IndexArray
    _direct_cols: IndexArray
    _remote_rows: IndexArray
    _remote_paths: IndexArray  # (remote KM-links, longest path), padded with its last hop
    _share: FloatArray  # per QKD-link column: remote KM-links sharing its key (inf: none)

    @classmethod
    def of(cls, network: Network) -> KMSupply:
        """The supply of ``network``'s fibre KM-links from its QKD-links."""
        column = {lk.id: i for i, lk in enumerate(network.qkd_links)}
        direct = {k.path[0]: k for k in network.km_links if k.kind is KMLinkKind.DIRECT}
        direct_links = [direct[lk.id] for lk in network.qkd_links if lk.id in direct]
        remote = [k for k in network.km_links if k.kind is KMLinkKind.REMOTE
                  and not any(hop in direct for hop in k.path)]
        km_links = (*direct_links, *remote)
        paths = tuple(np.array([column[hop] for hop in k.path], dtype=np.intp)
                      for k in km_links)
        feeds: list[list[int]] = [[] for _ in network.qkd_links]
        for row, path in enumerate(paths):
            for col in path.tolist():
                feeds[col].append(row)
        share = np.full(len(network.qkd_links), np.inf)
        for col, rows in enumerate(feeds):
            if rows and rows[0] >= len(direct_links):  # fed to remote KM-links only
                share[col] = len(rows)
        longest = max((len(k.path) for k in remote), default=1)
        padded = np.array([[*p.tolist(), *[p[-1]] * (longest - p.size)]
                           for p in paths[len(direct_links):]],
                          dtype=np.intp).reshape(len(remote), longest)
        return cls(km_links, paths, tuple(tuple(r) for r in feeds),
                   np.arange(len(direct_links), dtype=np.intp),
                   np.array([column[k.path[0]] for k in direct_links], dtype=np.intp),
                   np.arange(len(direct_links), len(km_links), dtype=np.intp), padded, share)

    def bits(self, link_bits: FloatArray) -> FloatArray:
        """Key (or rate) per fed KM-link from key (or rate) per QKD-link, along the last
        axis: a direct KM-link's own link's, a remote one's slowest hop's share."""
        out = np.empty((*link_bits.shape[:-1], len(self.km_links)))
        out[..., self._direct_rows] = link_bits[..., self._direct_cols]
        if self._remote_rows.size:
            shared = link_bits / self._share
            out[..., self._remote_rows] = shared[..., self._remote_paths].min(-1)
        return out

    def up(self, link_up: BoolArray) -> BoolArray:
        """Whether each fed KM-link is up: every QKD-link of its path is."""
        return np.array([bool(link_up[p].all()) for p in self.paths], dtype=bool)
