"""Scenario files: a network written in YAML or JSON, validated when parsed.

This module turns text into a network and back; reading and writing the files is
:mod:`qkdnet.files.networks`'s job.

The format (``qkdnet_scenario: 1``), with defaults where a field may be left out::

    qkdnet_scenario: 1
    name: my-network
    regions: [{id: north, name: North}]              # optional
    nodes:
      - {id: a, name: A, kind: backbone_access, lat: 39.9, lon: 116.4, city: A, region: north}
    qkd_links:
      - {a: a, b: b, length_km: 70, loss_db: 18.6,   # loss_db: 0.2 dB/km x length if absent
         device_type: I, device_pairs: 1, multiplexing: wdm, time_share: 1.0,
         field: {e_d: 0.01, dark_count_hz: 800, f_ec: 1.4}}   # id: "a--b" if absent
    km_links:                                        # absent: one direct KM-link per QKD-link
      - {id: km-a-c, a: a, b: c, kind: remote, path: [a--b, b--c]}
    domains:
      - {id: backbone, kind: backbone, name: Backbone, nodes: [a, b, c],
         managed_by: operator-x}    # optional: domains of different operators meet at
                                    # their shared nodes through ETSI GS QKD 020
    saes:                                            # applications and their nodes
      - {id: sae-a, node: a, name: Bank A}
    sae_pairs:                                       # absent: any two SAEs may share keys
      - [sae-a, sae-b]                               # unordered: either may be the master

Errors name the source (the file's name), the line, the path in the document and the problem:
``net.yaml:14: qkd_links[2].b: unknown node 'xyz'``.
"""

from __future__ import annotations

import difflib
import json
import types
import typing
from collections.abc import Callable
from types import MappingProxyType
from typing import Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from qkdnet.errors import ScenarioError
from qkdnet.topology.model import (
    SAE,
    Domain,
    DomainKind,
    KMLink,
    KMLinkKind,
    Multiplexing,
    Network,
    Node,
    NodeKind,
    QKDLink,
    Region,
)
from qkdnet.topology.validation import validated

FORMAT_VERSION = 1
#: The two spellings of a document: YAML (a superset of JSON) or strict JSON.
DocumentFormat = Literal["yaml", "json"]
S = TypeVar("S", bound=BaseModel)
T = TypeVar("T")
DEFAULT_ATTENUATION_DB_PER_KM = 0.2


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RegionSpec(_Spec):
    id: str
    name: str = ""


class NodeSpec(_Spec):
    id: str
    name: str = ""
    kind: NodeKind
    lat: float
    lon: float
    city: str = ""
    region: str = ""


class QKDLinkSpec(_Spec):
    id: str | None = None
    a: str
    b: str
    length_km: float
    loss_db: float | None = None
    device_type: str
    device_pairs: int = 1
    multiplexing: Multiplexing = Multiplexing.WDM
    time_share: float = 1.0
    field: dict[str, float] = {}


class KMLinkSpec(_Spec):
    id: str | None = None
    a: str
    b: str
    kind: KMLinkKind
    path: list[str] = []


class DomainSpec(_Spec):
    id: str
    kind: DomainKind
    name: str = ""
    nodes: list[str]
    managed_by: str = ""


class SAESpec(_Spec):
    id: str
    node: str
    name: str = ""


class ScenarioSpec(_Spec):
    qkdnet_scenario: Literal[1]
    name: str
    notes: str = ""
    regions: list[RegionSpec] = []
    nodes: list[NodeSpec]
    qkd_links: list[QKDLinkSpec] = []
    km_links: list[KMLinkSpec] | None = None
    domains: list[DomainSpec] = []
    saes: list[SAESpec] = []
    sae_pairs: list[tuple[str, str]] | None = None


def network_from_spec(spec: ScenarioSpec) -> Network:
    """The model of a parsed document, validated (errors carry document paths)."""
    links = tuple(
        QKDLink(s.id or f"{s.a}--{s.b}", s.a, s.b, s.length_km,
                s.loss_db if s.loss_db is not None
                else DEFAULT_ATTENUATION_DB_PER_KM * s.length_km,
                s.device_type, s.device_pairs, s.multiplexing, s.time_share,
                MappingProxyType(dict(s.field)))
        for s in spec.qkd_links
    )
    if spec.km_links is None:
        km_links = tuple(KMLink(f"km:{lk.a}~{lk.b}", lk.a, lk.b, KMLinkKind.DIRECT, (lk.id,))
                         for lk in links)
    else:
        km_links = tuple(KMLink(s.id or f"km:{s.a}~{s.b}", s.a, s.b, s.kind, tuple(s.path))
                         for s in spec.km_links)
    return validated(Network(
        spec.name,
        tuple(Node(s.id, s.name or s.id, s.kind, s.lat, s.lon, s.city, s.region)
              for s in spec.nodes),
        links, km_links,
        tuple(Domain(s.id, s.kind, s.name or s.id, frozenset(s.nodes), s.managed_by)
              for s in spec.domains),
        tuple(Region(s.id, s.name or s.id) for s in spec.regions),
        spec.notes,
        tuple(SAE(s.id, s.node, s.name) for s in spec.saes),
        None if spec.sae_pairs is None else tuple(spec.sae_pairs),
    ))


def network_to_document(network: Network) -> dict[str, Any]:
    """Plain data in the file format; loading it gives back an equal network."""
    document: dict[str, Any] = {
        "qkdnet_scenario": FORMAT_VERSION,
        "name": network.name,
        "notes": network.notes,
        "regions": [{"id": r.id, "name": r.name} for r in network.regions],
        "nodes": [{"id": n.id, "name": n.name, "kind": n.kind.value, "lat": n.lat,
                   "lon": n.lon, "city": n.city, "region": n.region} for n in network.nodes],
        "qkd_links": [
            {"id": lk.id, "a": lk.a, "b": lk.b, "length_km": lk.length_km,
             "loss_db": lk.loss_db, "device_type": lk.device_type,
             "device_pairs": lk.device_pairs, "multiplexing": lk.multiplexing.value,
             "time_share": lk.time_share, "field": dict(lk.field)}
            for lk in network.qkd_links
        ],
        "km_links": [{"id": k.id, "a": k.a, "b": k.b, "kind": k.kind.value,
                      "path": list(k.path)} for k in network.km_links],
        "domains": [{"id": d.id, "kind": d.kind.value, "name": d.name,
                     "nodes": sorted(d.nodes),
                     # absent when unset: documents of unmarked scenarios stay as they were
                     **({"managed_by": d.managed_by} if d.managed_by else {})}
                    for d in network.domains],
        "saes": [{"id": s.id, "node": s.node, "name": s.name} for s in network.saes],
    }
    if network.sae_pairs is not None:  # absent means every pair: keep it absent
        document["sae_pairs"] = [list(p) for p in network.sae_pairs]
    return document


def format_network(network: Network, fmt: DocumentFormat) -> str:
    """``network`` as the text of a YAML or JSON scenario file."""
    document = network_to_document(network)
    if fmt == "json":
        return json.dumps(document, indent=1)
    return yaml.dump(document, Dumper=_dumper(), sort_keys=False, default_flow_style=None,
                     allow_unicode=True, width=100)


def parse_network(text: str, source: str, fmt: DocumentFormat) -> Network:
    """Parse and validate the text of a scenario file; every problem is a ScenarioError
    naming ``source`` (the file's name), the line and the path in the document."""
    return parse_document(text, source, fmt, ScenarioSpec, network_from_spec)


def parse_document(text: str, source: str, fmt: DocumentFormat, model: type[S],
                   build: Callable[[S], T]) -> T:
    """Parse a YAML or JSON document, check it against ``model`` and ``build`` the result;
    every problem, including a ScenarioError that ``build`` raises with a document path,
    comes out as a ScenarioError naming ``source`` and the line."""
    try:
        data = json.loads(text) if fmt == "json" else yaml.load(text, Loader=_loader())
    except (yaml.YAMLError, json.JSONDecodeError) as exc:
        raise ScenarioError("", f"not valid {fmt.upper()}: " + " ".join(str(exc).split()),
                            source, _error_line(exc)) from None
    try:
        return build(model.model_validate(data))
    except ValidationError as exc:
        # A misspelt key also makes its correct spelling "missing": name the misspelling.
        errors = exc.errors()
        first = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
        where = document_path(first["loc"])
        message = first["msg"]
        if first["type"] == "extra_forbidden":
            message += _did_you_mean(model, first["loc"])
        raise ScenarioError(where, message, source, line_of(text, first["loc"])) from None
    except ScenarioError as exc:
        if exc.source is not None:  # already placed in another file (a referenced one)
            raise
        raise exc.located(source, line_of(text, parse_document_path(exc.path))) from None


def _did_you_mean(model: type[BaseModel], loc: tuple[int | str, ...]) -> str:
    """``; did you mean 'x'?`` for a misspelt key at ``loc``: the closest key the document
    takes there (difflib's ratio at least 0.6), else ``; keys here: ...``."""
    keys = _keys_at(model, loc[:-1])
    if not keys or not isinstance(loc[-1], str):
        return ""
    close = difflib.get_close_matches(loc[-1], keys, n=1)
    return f"; did you mean {close[0]!r}?" if close else "; keys here: " + ", ".join(keys)


def _keys_at(model: type[BaseModel], loc: tuple[int | str, ...]) -> list[str]:
    """The keys a mapping at ``loc`` inside a ``model`` document takes (empty where the
    place is not a model: a free-form mapping)."""
    kind: Any = model
    for part in loc:
        kind = _inner(kind, part)
        if kind is None:
            return []
    kind = _model_of(kind)
    if kind is None:
        return []
    return [f.alias or name for name, f in kind.model_fields.items()]


def _inner(kind: Any, part: int | str) -> Any:
    """The type of element ``part`` of a value of type ``kind``, None where unknown."""
    model = _model_of(kind)
    if model is not None:
        if not isinstance(part, str):
            return None
        field = next((f for name, f in model.model_fields.items()
                      if part in (name, f.alias)), None)
        return None if field is None else field.annotation
    args = [a for a in typing.get_args(kind) if a is not type(None) and a is not Ellipsis]
    if typing.get_origin(kind) in (typing.Union, types.UnionType):  # X | None
        return _inner(args[0], part) if len(args) == 1 else None
    return args[-1] if args else None  # list[X], tuple[X, ...], dict[str, X]


def _model_of(kind: Any) -> type[BaseModel] | None:
    """``kind`` if it is a model, else the model in ``kind | None``."""
    if isinstance(kind, type) and issubclass(kind, BaseModel):
        return kind
    models = [a for a in typing.get_args(kind) if isinstance(a, type) and issubclass(a, BaseModel)]
    return models[0] if len(models) == 1 and type(None) in typing.get_args(kind) else None


def document_path(loc: tuple[int | str, ...]) -> str:
    """``("qkd_links", 3, "b")`` as ``qkd_links[3].b``."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def parse_document_path(path: str) -> tuple[int | str, ...]:
    """``qkd_links[3].b`` as ``("qkd_links", 3, "b")``."""
    parts: list[int | str] = []
    for piece in path.replace("[", ".[").split("."):
        if piece.startswith("["):
            parts.append(int(piece.strip("[]")))
        elif piece:
            parts.append(piece)
    return tuple(parts)


def line_of(text: str, loc: tuple[int | str, ...]) -> int | None:
    """1-based line of the deepest element of ``loc`` found in the document (YAML or JSON,
    which YAML reads too): the document's first line when not even the first part is there;
    None if the text cannot be composed."""
    try:
        node = yaml.compose(text, Loader=_loader())
    except yaml.YAMLError:
        return None
    line = 1 if node is None else node.start_mark.line + 1
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            found = [(k, v) for k, v in node.value if k.value == part]
            if not found:
                break
            line, node = found[0][0].start_mark.line + 1, found[0][1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) \
                and part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            break
    return line


def _error_line(exc: Exception) -> int | None:
    mark = getattr(exc, "problem_mark", None)
    if mark is not None:
        return int(mark.line) + 1
    return getattr(exc, "lineno", None)


def _loader() -> type[yaml.SafeLoader]:
    # libyaml's loader is several times faster where PyYAML was built with it
    return getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _dumper() -> type[yaml.SafeDumper]:
    return getattr(yaml, "CSafeDumper", yaml.SafeDumper)
