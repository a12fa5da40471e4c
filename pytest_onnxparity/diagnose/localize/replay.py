"""Replay: a variant's nodes run on the reference's own activations, so each matched tensor shows
the error its segment of the graph adds by itself, not the error it inherits.

A *segment* is what computes one matched tensor from the nearest matched tensors upstream (its
*frontier*): one node, or a few where the variant rewrote the reference's node into several
(DynamicQuantizeLinear → MatMulInteger → Cast → Mul). The replay copy of the variant reads every
frontier tensor from a new graph input, fed with the reference's value, and keeps only the nodes
the requested tensors need. Drift that a layer only inherits — a GELU's ``1 + erf`` turning a
small error into a large relative one — vanishes there; a damaged weight does not.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any

REFERENCE_FEED_SUFFIX = "::onnxparity_reference"
"""Suffix of the graph input that carries the reference's value of a cut tensor."""


def fed_name(tensor: str) -> str:
    """The replay graph input that carries the reference's value of ``tensor``."""
    return tensor + REFERENCE_FEED_SUFFIX


def segment(
    nodes: Sequence[Any],
    producer: Mapping[str, int],
    tensors: str | Sequence[str],
    cuttable: Collection[str],
    reads: Sequence[Sequence[str]] | None = None,
) -> tuple[tuple[int, ...], tuple[str, ...]]:
    """The nodes (indices into ``nodes``, topological) that compute ``tensors`` from their
    frontier, and that frontier: the tensors in ``cuttable`` first met walking up from them.

    One walk serves every tensor, so a batch costs one pass over its region; a tensor of
    ``tensors`` that another one reads is part of that one's frontier when it is cuttable.
    Walking stops at graph inputs and initializers too (names nothing produces). ``reads`` are
    the names each node reads (:func:`node_reads`), where the caller has them at hand.
    """
    starts = [tensors] if isinstance(tensors, str) else list(tensors)
    found: set[int] = set()
    frontier: dict[str, None] = {}
    seen: set[str] = set()
    pending: list[str] = []

    def enter(index: int) -> None:
        found.add(index)
        pending.extend(reads[index] if reads is not None else node_reads(nodes[index]))

    for tensor in starts:
        index = producer.get(tensor)
        if index is not None and index not in found:
            enter(index)
    while pending:
        name = pending.pop()
        if not name or name in seen:
            continue
        seen.add(name)
        if name in cuttable:
            frontier[name] = None
            continue
        index = producer.get(name)
        if index is not None and index not in found:
            enter(index)
    return tuple(sorted(found)), tuple(frontier)


def replay_model(
    model: Any, targets: Sequence[str], cut_types: Mapping[str, int], producer: Mapping[str, int]
) -> Any:
    """A copy of ``model`` computing ``targets`` with every tensor in ``cut_types`` read from a
    graph input (named by :func:`fed_name`, of the given ONNX element type) by its consumers.

    Only the nodes the targets need are kept; the original graph inputs stay declared.
    """
    import onnx

    replay = onnx.ModelProto()
    replay.CopyFrom(model)
    graph = replay.graph
    nodes = list(graph.node)
    needed, _ = segment(nodes, producer, targets, cut_types)
    kept = [nodes[index] for index in needed]
    for node in kept:
        _read_from_feeds(node, cut_types)
    del graph.node[:]
    graph.node.extend(kept)
    graph.input.extend(
        onnx.helper.make_tensor_value_info(fed_name(name), element_type, None)
        for name, element_type in cut_types.items()
    )
    del graph.output[:]
    graph.output.extend(onnx.ValueInfoProto(name=name) for name in dict.fromkeys(targets))
    return replay


def _read_from_feeds(node: Any, cuts: Collection[str]) -> None:
    for slot, name in enumerate(node.input):
        if name in cuts:
            node.input[slot] = fed_name(name)
    for subgraph in _subgraphs(node):
        for inner in subgraph.node:
            _read_from_feeds(inner, cuts)


def node_reads(node: Any) -> list[str]:
    """The names a node reads: its inputs and whatever its subgraphs read from outer scopes (an
    over-approximation: names a subgraph defines itself are not produced outside it)."""
    names = list(node.input)
    for subgraph in _subgraphs(node):
        for inner in subgraph.node:
            names.extend(node_reads(inner))
    return names


def _subgraphs(node: Any) -> Iterable[Any]:
    for attribute in node.attribute:
        if attribute.type == attribute.GRAPH:
            yield attribute.g
        elif attribute.type == attribute.GRAPHS:
            yield from attribute.graphs
