"""Config that guards nothing is an error: every table, scope and list names something the export
folder has.

A ``[graphs.modle]`` table, a ``[graphs.encoder.variants.int9]`` table, a limit on an output the
graph does not have, ``skip_outputs`` naming every output, or ``--parity-tolerance int9:…``
would otherwise be accepted and never applied: the run would pass on the defaults while the
user believes a limit holds. The checks run once, after discovery and before any test, and read
the reference files' outputs from the wire format (no onnxruntime, no weights).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from pytest_onnxparity.config.project import ParityConfig
from pytest_onnxparity.config.tables import ConfigError
from pytest_onnxparity.config.tolerances import TIERS, ScopedTolerance
from pytest_onnxparity.export.folder import ExportFolder, Graph
from pytest_onnxparity.onnxfile.signature import read_signature


def check_config_targets(
    config: ParityConfig,
    folder: ExportFolder,
    cli_tolerances: Sequence[ScopedTolerance] = (),
) -> None:
    """Raise :class:`ConfigError` for the first table or scope that names nothing in ``folder``."""
    where = " + ".join(config.sources) or "<config>"
    graphs = {graph.name: graph for graph in folder.graphs}
    signatures = {name: _signature(graph) for name, graph in graphs.items()}
    for name, graph_config in config.graphs.items():
        table = f'{where} [graphs."{name}"]'
        graph = graphs.get(name)
        if graph is None:
            raise ConfigError(
                f"{table}: no graph {name!r} in {folder.root}; graphs are "
                f"{_listed(graphs)}; fix the name or remove the table"
            )
        tags = [model.variant for model in graph.files]
        for tag in graph_config.variants:
            if tag not in tags:
                raise ConfigError(
                    f'{table} [variants."{tag}"]: graph {name} has no variant {tag!r}; its '
                    f"files are {', '.join(tags)}; fix the tag or remove the table"
                )
        signature = signatures[name]
        if signature is None:
            continue  # an unreadable reference: its own tests fail naming the file
        inputs, outputs = signature
        named_outputs = [(f"[outputs.{output}]", output) for output in graph_config.outputs]
        for tag, variant_config in graph_config.variants.items():
            named_outputs += [
                (f'[variants."{tag}"] [outputs.{output}]', output)
                for output in variant_config.outputs
            ]
        named_outputs += [("skip_outputs", output) for output in graph_config.skip_outputs]
        for key, output in named_outputs:
            if output not in outputs:
                raise ConfigError(
                    f"{table} {key}: graph {name} has no output {output!r}; its outputs are "
                    f"{_listed(outputs)}; fix the name"
                )
        if outputs and set(outputs) <= set(graph_config.skip_outputs):
            raise ConfigError(
                f"{table} skip_outputs: lists every output of {name}, so no test of it would "
                "compare anything; keep at least one output"
            )
        for input_name in graph_config.inputs:
            if input_name not in inputs:
                raise ConfigError(
                    f"{table} [inputs.{input_name}]: graph {name} has no input {input_name!r}; "
                    f"its inputs are {_listed(inputs)}; fix the name"
                )
    _check_scopes(cli_tolerances, folder, signatures)


def _check_scopes(
    cli_tolerances: Sequence[ScopedTolerance],
    folder: ExportFolder,
    signatures: dict[str, tuple[list[str], list[str]] | None],
) -> None:
    scopes = set(TIERS)
    for graph in folder.graphs:
        scopes.add(graph.name)
        for model in graph.files:
            scopes.update((model.variant, f"{graph.name}/{model.variant}"))
            signature = signatures[graph.name]
            outputs = signature[1] if signature is not None else []
            scopes.update(f"{graph.name}/{model.variant}/{output}" for output in outputs)
    graphs = _listed(graph.name for graph in folder.graphs)
    for scoped in cli_tolerances:
        if scoped.scope is not None and scoped.scope not in scopes:
            raise ConfigError(
                f"--parity-tolerance {scoped.scope}:{scoped.key}={scoped.value}: scope "
                f"{scoped.scope!r} names no tier, graph, variant or output of {folder.root}; "
                f"use a tier ({', '.join(TIERS)}), a graph ({graphs}), GRAPH/VARIANT or "
                "GRAPH/VARIANT/OUTPUT"
            )


def _signature(graph: Graph) -> tuple[list[str], list[str]] | None:
    model = graph.reference_file
    if model.problem:
        return None
    try:
        inputs, outputs = read_signature(str(model.path))
    except (OSError, ValueError):  # protoscan's errors are ValueErrors
        return None
    return [spec.name for spec in inputs], [spec.name for spec in outputs]


def _listed(names: Iterable[str]) -> str:
    return ", ".join(sorted(names)) or "none"
