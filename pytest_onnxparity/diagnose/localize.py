"""Localizing divergence: which intermediate tensor of a variant first drifts from its reference,
and which layers add the most drift.

Both models are instrumented (their intermediate tensors become graph outputs), run on the same
inputs, and their activations are matched by tensor name across the rewrite. Activations are
fetched in batches of ``batch_size`` tensors, one onnxruntime session per batch and model, so
memory holds one batch of activations per model at a time rather than every tensor of the graph.

Exposing intermediate tensors blocks the fusions that would consume them, so the instrumented
runs are for localization only: the end-to-end verdict always comes from the ordinary,
uninstrumented run, and each ``Localization`` records the optimisation level it ran at.
"""

from __future__ import annotations

import dataclasses
import heapq
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pytest_onnxparity.compare.metrics import ShapeMismatchError, compare_outputs
from pytest_onnxparity.config.project import GRAPH_OPT_LEVELS, ConfigError, check_keys
from pytest_onnxparity.runtime.sessions import ModelLoadError, SessionSettings, open_session

LOCALIZE_KEYS = (
    "auto",
    "tolerance_rel_l2",
    "top_n",
    "batch_size",
    "graph_optimization_level",
    "plot_format",
)
PLOT_FORMATS = ("png", "svg")
FLOAT_TENSOR_TYPES = ("tensor(float)", "tensor(float16)", "tensor(double)")
# Tensors no bigger than this stay inside the instrumented protobuf; larger ones go to a sidecar.
INLINE_TENSOR_BYTES = 1024
MESSAGE_NAME_LIMIT = 8


@dataclass(frozen=True)
class LocalizeOptions:
    """How localization runs; read from the ``[localize]`` config table.

    ``tolerance_rel_l2`` marks a tensor as drifted; ``top_n`` is how many layers the report lists;
    ``batch_size`` is how many tensors one instrumented run exposes (the memory bound);
    ``graph_optimization_level`` is onnxruntime's level for the instrumented runs (``"disable"``
    keeps every tensor name); ``plot_format`` is ``"png"`` or ``"svg"``; ``auto`` localizes
    failing graph parity tests without ``--parity-localize``.
    """

    tolerance_rel_l2: float = 0.05
    top_n: int = 5
    batch_size: int = 64
    graph_optimization_level: str = "disable"
    plot_format: str = "png"
    auto: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "tolerance_rel_l2": self.tolerance_rel_l2,
            "top_n": self.top_n,
            "batch_size": self.batch_size,
            "graph_optimization_level": self.graph_optimization_level,
            "plot_format": self.plot_format,
            "auto": self.auto,
        }


def parse_localize_options(raw: Mapping[str, Any], where: str) -> LocalizeOptions:
    """Validate the raw ``[localize]`` table; ``where`` names its source in errors."""
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: [localize] must be a table, got {raw!r}")
    check_keys(raw, LOCALIZE_KEYS, where)
    defaults = LocalizeOptions()
    tolerance = raw.get("tolerance_rel_l2", defaults.tolerance_rel_l2)
    if (
        isinstance(tolerance, bool)
        or not isinstance(tolerance, (int, float))
        or not math.isfinite(tolerance)
        or tolerance <= 0
    ):
        raise ConfigError(
            f"{where}: tolerance_rel_l2 must be a number > 0 (e.g. 0.05), got {tolerance!r}"
        )
    level = raw.get("graph_optimization_level", defaults.graph_optimization_level)
    if level not in GRAPH_OPT_LEVELS:
        raise ConfigError(
            f"{where}: graph_optimization_level must be one of {', '.join(GRAPH_OPT_LEVELS)}, "
            f"got {level!r}"
        )
    plot_format = raw.get("plot_format", defaults.plot_format)
    if plot_format not in PLOT_FORMATS:
        raise ConfigError(
            f"{where}: plot_format must be one of {', '.join(PLOT_FORMATS)}, got {plot_format!r}"
        )
    auto = raw.get("auto", defaults.auto)
    if not isinstance(auto, bool):
        raise ConfigError(f"{where}: auto must be true or false, got {auto!r}")
    return LocalizeOptions(
        tolerance_rel_l2=float(tolerance),
        top_n=_positive_int(raw, "top_n", defaults.top_n, where),
        batch_size=_positive_int(raw, "batch_size", defaults.batch_size, where),
        graph_optimization_level=level,
        plot_format=plot_format,
        auto=auto,
    )


def _positive_int(raw: Mapping[str, Any], key: str, default: int, where: str) -> int:
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{where}: {key} must be an integer >= 1, got {value!r}")
    return value


@dataclass(frozen=True)
class TensorDrift:
    """The error of one matched intermediate tensor, named as in the reference graph.

    ``node``/``op_type`` are the reference node producing ``tensor`` (``node`` is ``""`` where
    the graph leaves it unnamed); ``depth`` is that node's topological index in the reference.
    ``added_rel_l2`` is the drift this layer introduces rather than inherits: how much
    ``rel_l2`` grows over the worst matched tensor feeding the node (0 where it shrinks).
    ``variant_tensor`` is the name compared in the variant (the dequantized copy after a
    QuantizeLinear/DequantizeLinear pair).
    Non-finite variant values where the reference is finite make ``rel_l2`` infinite.
    """

    tensor: str
    node: str
    op_type: str
    depth: int
    max_abs: float
    mean_abs: float
    rel_l2: float
    sqnr_db: float
    cosine: float
    added_rel_l2: float = 0.0
    variant_tensor: str = ""
    shape: tuple[int, ...] = ()
    nonfinite_in_variant: int = 0

    def exceeds(self, tolerance_rel_l2: float) -> bool:
        return self.rel_l2 > tolerance_rel_l2 or self.nonfinite_in_variant > 0

    def describe(self) -> str:
        """``'tensor' from Op 'node' (depth d): rel_l2 …, SQNR … dB, cosine …, max_abs …``."""
        node = f"{self.op_type} {self.node!r}" if self.node else f"unnamed {self.op_type} node"
        nonfinite = (
            f", {self.nonfinite_in_variant} non-finite values" if self.nonfinite_in_variant else ""
        )
        return (
            f"{self.tensor!r} from {node} (depth {self.depth}): rel_l2 {self.rel_l2:.3g} "
            f"(+{self.added_rel_l2:.3g} here), SQNR {self.sqnr_db:.1f} dB, "
            f"cosine {self.cosine:.4f}, max_abs {self.max_abs:.3g}{nonfinite}"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "tensor": self.tensor,
            "node": self.node,
            "op_type": self.op_type,
            "depth": self.depth,
            "variant_tensor": self.variant_tensor,
            "shape": list(self.shape),
            "max_abs": _json_float(self.max_abs),
            "mean_abs": _json_float(self.mean_abs),
            "rel_l2": _json_float(self.rel_l2),
            "added_rel_l2": _json_float(self.added_rel_l2),
            "sqnr_db": _json_float(self.sqnr_db),
            "cosine": _json_float(self.cosine),
            "nonfinite_in_variant": self.nonfinite_in_variant,
        }

    @classmethod
    def from_json(cls, document: Mapping[str, Any]) -> TensorDrift:
        """The drift ``to_json`` wrote (how the controller rebuilds a worker's results)."""
        return cls(
            tensor=document["tensor"],
            node=document["node"],
            op_type=document["op_type"],
            depth=int(document["depth"]),
            max_abs=float(document["max_abs"]),
            mean_abs=float(document["mean_abs"]),
            rel_l2=float(document["rel_l2"]),
            sqnr_db=float(document["sqnr_db"]),
            cosine=float(document["cosine"]),
            added_rel_l2=float(document["added_rel_l2"]),
            variant_tensor=document["variant_tensor"],
            shape=tuple(document["shape"]),
            nonfinite_in_variant=int(document["nonfinite_in_variant"]),
        )


def _json_float(value: float) -> float | str:
    """Infinities as ``"inf"``/``"-inf"`` (as the metrics histogram does): JSON has no literal."""
    value = float(value)
    if math.isfinite(value):
        return value
    return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")


@dataclass(frozen=True)
class Localization:
    """Where a variant drifts from its reference, tensor by tensor, in topological order."""

    graph: str
    variant: str
    optimization_level: str
    matched: tuple[TensorDrift, ...]
    unmatched_reference: tuple[str, ...]
    unmatched_variant: tuple[str, ...]
    first_past_tolerance: TensorDrift | None
    tolerance_rel_l2: float = LocalizeOptions.tolerance_rel_l2
    top_n: int = LocalizeOptions.top_n
    instrumented_runs: int = 0
    plot: str | None = None

    def top(self, n: int) -> tuple[TensorDrift, ...]:
        """The ``n`` tensors whose producing layer adds the most drift (``added_rel_l2``),
        largest first; layers that add none are left out."""
        adding = [drift for drift in self.matched if drift.added_rel_l2 > 0]
        adding.sort(key=lambda d: (-d.added_rel_l2, -d.rel_l2, d.depth))
        return tuple(adding[:n])

    def with_plot(self, path: Path) -> Localization:
        """This localization, referencing the drift plot written at ``path``."""
        return dataclasses.replace(self, plot=str(path))

    def message_lines(self, n: int) -> list[str]:
        """Lines for a failure message: the first drifted tensor, the top ``n``, what did not
        match, and the plot."""
        lines = [
            f"localization of {self.variant!r} against the reference of {self.graph!r} "
            f"(onnxruntime graph optimisation level {self.optimization_level!r} for the "
            f"instrumented runs; {len(self.matched)} tensors matched):"
        ]
        first = self.first_past_tolerance
        if first is None:
            lines.append(f"  no matched tensor is past rel_l2 {self.tolerance_rel_l2:g}")
        else:
            lines.append(f"  first past rel_l2 {self.tolerance_rel_l2:g}: {first.describe()}")
        top = self.top(n)
        if top:
            lines.append(f"  top {len(top)} by drift added:")
            lines.extend(f"    {rank}. {drift.describe()}" for rank, drift in enumerate(top, 1))
        for side, names in (
            ("reference", self.unmatched_reference),
            ("variant", self.unmatched_variant),
        ):
            if names:
                lines.append(f"  not matched in the {side}: {_name_list(names)}")
        if self.plot is not None:
            lines.append(f"  drift by depth: {self.plot}")
        return lines

    def summary_line(self) -> str:
        """One line for the terminal summary: the first drifted tensor and the layer adding the
        most drift."""
        first = self.first_past_tolerance
        where = "none" if first is None else f"{first.tensor!r} ({_node(first)})"
        top = self.top(1)
        most = "none" if not top else f"{_node(top[0])} (+{top[0].added_rel_l2:.3g})"
        return f"first past rel_l2 {self.tolerance_rel_l2:g}: {where}; most drift added by {most}"

    def to_json(self) -> dict[str, Any]:
        return {
            "graph": self.graph,
            "variant": self.variant,
            "optimization_level": self.optimization_level,
            "tolerance_rel_l2": self.tolerance_rel_l2,
            "top_n": self.top_n,
            "instrumented_runs": self.instrumented_runs,
            "first_past_tolerance": (
                None if self.first_past_tolerance is None else self.first_past_tolerance.tensor
            ),
            "top": [drift.tensor for drift in self.top(self.top_n)],
            "matched": [drift.to_json() for drift in self.matched],
            "unmatched_reference": list(self.unmatched_reference),
            "unmatched_variant": list(self.unmatched_variant),
            "plot": self.plot,
        }

    @classmethod
    def from_json(cls, document: Mapping[str, Any]) -> Localization:
        """The localization ``to_json`` wrote; ``float("inf")`` reads its ``"inf"`` back."""
        matched = tuple(TensorDrift.from_json(drift) for drift in document["matched"])
        first = document["first_past_tolerance"]
        return cls(
            graph=document["graph"],
            variant=document["variant"],
            optimization_level=document["optimization_level"],
            matched=matched,
            unmatched_reference=tuple(document["unmatched_reference"]),
            unmatched_variant=tuple(document["unmatched_variant"]),
            first_past_tolerance=next((d for d in matched if d.tensor == first), None),
            tolerance_rel_l2=float(document["tolerance_rel_l2"]),
            top_n=int(document.get("top_n", LocalizeOptions.top_n)),
            instrumented_runs=int(document["instrumented_runs"]),
            plot=document["plot"],
        )


def _node(drift: TensorDrift) -> str:
    return f"{drift.op_type} {drift.node!r}" if drift.node else f"unnamed {drift.op_type}"


def _name_list(names: Sequence[str]) -> str:
    shown = ", ".join(repr(name) for name in names[:MESSAGE_NAME_LIMIT])
    hidden = len(names) - MESSAGE_NAME_LIMIT
    return shown + (f" and {hidden} more" if hidden > 0 else "")


def localize(
    reference_path: Path,
    variant_path: Path,
    inputs: Mapping[str, np.ndarray],
    *,
    graph: str,
    variant: str,
    options: LocalizeOptions,
    workdir: Path,
    settings: SessionSettings | None = None,
) -> Localization:
    """Compare every float intermediate tensor of ``variant_path`` with ``reference_path`` on
    ``inputs`` and report where the variant drifts.

    Tensors are matched by name; a tensor the variant quantizes through a QuantizeLinear →
    DequantizeLinear pair is compared as its consumers see it, after the pair. Only tensors
    computed from the graph inputs (not constants) of the top-level graph are considered, and
    only float ones (float16 is upcast). Instrumented copies of both models, with their weights in
    one sidecar each (so models with external data work), are written to ``workdir``; each run
    exposes at most ``options.batch_size`` tensors. ``settings`` picks providers and threads;
    its optimisation level is replaced by ``options.graph_optimization_level``.
    """
    settings = dataclasses.replace(
        settings or SessionSettings(), graph_optimization_level=options.graph_optimization_level
    )
    workdir.mkdir(parents=True, exist_ok=True)
    reference = _InstrumentableModel(reference_path, workdir / "reference.instrumented.onnx")
    candidate = _InstrumentableModel(variant_path, workdir / "variant.instrumented.onnx")
    reference_floats = reference.float_activations(settings)
    variant_floats = candidate.float_activations(settings)

    pairs: list[tuple[str, str]] = []
    unmatched_reference: list[str] = []
    for tensor in reference.activations:
        if tensor not in reference_floats:
            continue
        seen_as = candidate.as_consumed(tensor) if tensor in candidate.producer else None
        if seen_as is not None and seen_as in variant_floats:
            pairs.append((tensor, seen_as))
        else:
            unmatched_reference.append(tensor)

    drifts: dict[str, TensorDrift] = {}
    runs = 0
    for batch in _batches(pairs, options.batch_size):
        reference_values = reference.run([ref for ref, _ in batch], inputs, settings)
        variant_values = candidate.run([var for _, var in batch], inputs, settings)
        runs += 1
        for ref_name, var_name in batch:
            drift = _measure(
                reference, ref_name, var_name, reference_values[ref_name], variant_values[var_name]
            )
            if drift is None:
                unmatched_reference.append(ref_name)
            else:
                drifts[ref_name] = drift
        del reference_values, variant_values

    matched = _with_added_drift(reference, drifts)
    compared_in_variant = {drift.variant_tensor for drift in matched}
    # The pre-quantization tensor of a QDQ pair was matched through its dequantized copy.
    compared_in_variant |= {drift.tensor for drift in matched}
    order = {name: index for index, name in enumerate(reference.activations)}
    return Localization(
        graph=graph,
        variant=variant,
        optimization_level=options.graph_optimization_level,
        matched=matched,
        unmatched_reference=tuple(sorted(unmatched_reference, key=order.__getitem__)),
        unmatched_variant=tuple(
            name
            for name in candidate.activations
            if name in variant_floats and name not in compared_in_variant
        ),
        first_past_tolerance=next(
            (drift for drift in matched if drift.exceeds(options.tolerance_rel_l2)), None
        ),
        tolerance_rel_l2=options.tolerance_rel_l2,
        top_n=options.top_n,
        instrumented_runs=runs,
    )


def _batches(pairs: Sequence[tuple[str, str]], size: int) -> Iterator[Sequence[tuple[str, str]]]:
    for start in range(0, len(pairs), size):
        yield pairs[start : start + size]


def _measure(
    reference: _InstrumentableModel,
    ref_name: str,
    var_name: str,
    ref_value: np.ndarray,
    var_value: np.ndarray,
) -> TensorDrift | None:
    """The drift of one tensor, or None where the two are not comparable (shape or dtype)."""
    ref_value, var_value = np.asarray(ref_value), np.asarray(var_value)
    if ref_value.dtype.kind != "f" or var_value.dtype.kind != "f":
        return None
    try:
        stats = compare_outputs(ref_name, ref_value, var_value, argmax_axis=None)
    except ShapeMismatchError:
        return None
    rel_l2 = math.inf if stats.nonfinite_in_variant else stats.rel_l2
    node = reference.nodes[reference.producer[ref_name]]
    return TensorDrift(
        tensor=ref_name,
        node=node.name,
        op_type=node.op_type,
        depth=reference.producer[ref_name],
        max_abs=stats.max_abs,
        mean_abs=stats.mean_abs,
        rel_l2=rel_l2,
        sqnr_db=_sqnr_db(rel_l2),
        cosine=stats.cosine,
        variant_tensor=var_name,
        shape=stats.shape,
        nonfinite_in_variant=stats.nonfinite_in_variant,
    )


def _sqnr_db(rel_l2: float) -> float:
    """Signal-to-quantization-noise ratio: ``10·log10(‖ref‖² / ‖var − ref‖²)``, which is
    ``−20·log10(rel_l2)``."""
    if rel_l2 == 0.0:
        return math.inf
    if math.isinf(rel_l2):
        return -math.inf
    return -20.0 * math.log10(rel_l2)


def _with_added_drift(
    reference: _InstrumentableModel, drifts: Mapping[str, TensorDrift]
) -> tuple[TensorDrift, ...]:
    """The matched drifts in topological order, each with the drift its own layer adds.

    A tensor inherits the worst drift of the matched tensors upstream of it; unmatched tensors
    pass their inputs' drift through, so a layer hidden by a rewrite is charged to the next
    matched tensor.
    """
    inherited: dict[str, float] = {}
    ordered = []
    for node in reference.nodes:
        upstream = max((inherited.get(name, 0.0) for name in node.input), default=0.0)
        for name in node.output:
            drift = drifts.get(name)
            if drift is None:
                inherited[name] = upstream
                continue
            inherited[name] = drift.rel_l2
            added = 0.0 if math.isinf(upstream) else max(drift.rel_l2 - upstream, 0.0)
            ordered.append(dataclasses.replace(drift, added_rel_l2=added))
    return tuple(ordered)


class _InstrumentableModel:
    """One model's graph, indexed for matching, and a working copy in the workdir whose outputs
    are swapped for each instrumented run."""

    def __init__(self, source: Path, instrumented_path: Path) -> None:
        import onnx

        if not source.is_file():
            raise ModelLoadError(f"{source}: no such model; check the path passed to localize")
        self.source = source
        self.path = instrumented_path
        sidecar = instrumented_path.name + ".data"
        # onnx appends to an existing sidecar instead of replacing it.
        (instrumented_path.parent / sidecar).unlink(missing_ok=True)
        model = onnx.load(str(source))
        onnx.save_model(
            model,
            str(instrumented_path),
            save_as_external_data=True,
            all_tensors_to_one_file=True,
            location=sidecar,
            size_threshold=INLINE_TENSOR_BYTES,
        )
        # save_model moved the weights to the sidecar, so rewriting the outputs is now cheap.
        self.model = model
        self.graph_outputs = {value.name: value for value in model.graph.output}
        self.nodes = _topological_nodes(model.graph, source)
        self.producer = {
            name: index for index, node in enumerate(self.nodes) for name in node.output if name
        }
        self.consumers: dict[str, list[Any]] = {}
        for node in self.nodes:
            for name in node.input:
                self.consumers.setdefault(name, []).append(node)
        self.activations = _activations(model.graph, self.nodes)

    def as_consumed(self, tensor: str) -> str:
        """``tensor``, or its dequantized copy where it feeds a QuantizeLinear/DequantizeLinear
        pair, as the quantized graph's consumers see it."""
        for quantize in self.consumers.get(tensor, []):
            if quantize.op_type != "QuantizeLinear":
                continue
            for dequantize in self.consumers.get(quantize.output[0], []):
                if dequantize.op_type == "DequantizeLinear":
                    return str(dequantize.output[0])
        return tensor

    def float_activations(self, settings: SessionSettings) -> set[str]:
        """The activations onnxruntime types as float, read from a session that is never run."""
        if not self.activations:
            return set()
        self._expose(self.activations)
        session = open_session(self.path, settings).session
        return {arg.name for arg in session.get_outputs() if arg.type in FLOAT_TENSOR_TYPES}

    def run(
        self, names: Sequence[str], inputs: Mapping[str, np.ndarray], settings: SessionSettings
    ) -> dict[str, np.ndarray]:
        """The values of ``names`` on ``inputs`` from a fresh session exposing only them."""
        self._expose(names)
        return open_session(self.path, settings).run(inputs)

    def _expose(self, names: Sequence[str]) -> None:
        import onnx

        outputs = self.model.graph.output
        del outputs[:]
        for name in dict.fromkeys(names):
            # Untyped outputs are fine: onnxruntime infers their types when it resolves the graph.
            outputs.append(self.graph_outputs.get(name) or onnx.ValueInfoProto(name=name))
        onnx.save_model(self.model, str(self.path))


def _topological_nodes(graph: Any, source: Path) -> list[Any]:
    """The top-level nodes in topological order, keeping file order wherever it is free."""
    nodes = list(graph.node)
    producer = {name: index for index, node in enumerate(nodes) for name in node.output if name}
    waiting = [
        {producer[name] for name in node.input if name in producer} - {index}
        for index, node in enumerate(nodes)
    ]
    unblocks: dict[int, list[int]] = {}
    for index, dependencies in enumerate(waiting):
        for dependency in dependencies:
            unblocks.setdefault(dependency, []).append(index)
    ready = [index for index, dependencies in enumerate(waiting) if not dependencies]
    heapq.heapify(ready)
    order = []
    while ready:
        index = heapq.heappop(ready)
        order.append(index)
        for follower in unblocks.get(index, []):
            waiting[follower].discard(index)
            if not waiting[follower]:
                heapq.heappush(ready, follower)
    if len(order) != len(nodes):
        raise ModelLoadError(
            f"{source}: the graph has a cycle, so it has no topological order; "
            "re-export it or check it with onnx.checker.check_model"
        )
    return [nodes[index] for index in order]


def _activations(graph: Any, nodes: Sequence[Any]) -> tuple[str, ...]:
    """Node outputs computed from a graph input, in topological order; constants and weights
    (a QDQ graph's dequantized weights) are left out."""
    initializers = {tensor.name for tensor in graph.initializer}
    dynamic = {value.name for value in graph.input if value.name not in initializers}
    activations = []
    for node in nodes:
        if any(name in dynamic for name in node.input):
            for name in node.output:
                if name:
                    dynamic.add(name)
                    activations.append(name)
    return tuple(activations)
