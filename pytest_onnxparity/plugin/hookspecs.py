"""Hooks that conftest.py files and plugins implement to extend pytest-onnxparity.

Registered by ``pytest_addhooks``; each is documented with when it runs and what it returns.
Mark your implementations ``@pytest.hookimpl(optionalhook=True)``: without it, a run with the
plugin disabled (``-p no:onnxparity``) or not installed stops with "unknown hook".
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from pytest_onnxparity.export.folder import Graph
    from pytest_onnxparity.run.engine import ParityEngine


@pytest.hookspec
def pytest_onnxparity_graph_items(
    parent: pytest.Collector, graph: Graph, engine: ParityEngine
) -> list[pytest.Item] | None:
    """Extra test items for one graph of the export folder (health checks, size budgets…).

    Called while the graph's node is collected; return items made with
    ``SomeItem.from_parent(parent, name=...)`` or None. All implementations' lists are joined.
    """


@pytest.hookspec
def pytest_onnxparity_update_record(record: dict[str, Any], item: pytest.Item) -> None:
    """Edit a result record (plain JSON) in place before it is attached to the test report.

    Every implementation is called, in pluggy's order, each seeing the edits of the ones before;
    what they return is ignored. The record then goes to the controller on the report (it must
    stay plain JSON: dicts, lists, str, int, float, bool, None).
    """


@pytest.hookspec
def pytest_onnxparity_failure_details(
    item: pytest.Item, record: dict[str, Any]
) -> list[str] | None:
    """Extra lines for a failed parity test's message (e.g. which layer drifted first).

    ``record`` is the plain-JSON record of the failed test; it may be edited in place to add
    what the lines describe. All implementations' lines are appended in order.
    """


@pytest.hookspec
def pytest_onnxparity_update_metadata(metadata: dict[str, Any], config: pytest.Config) -> None:
    """Edit the parity metadata block (plain JSON) in place before it is used.

    Called once per run, on the controller, after every record is in and before
    ``--parity-metadata`` and ``--parity-markdown`` are written and ``--parity-baseline``
    compares. Add what a model card needs (``metadata["model"] = "org/name@rev"``) or drop what
    it must not show; keys are sorted when the block is written.
    """


@pytest.hookspec(firstresult=True)
def pytest_onnxparity_reference(graph: str, config: pytest.Config) -> Any:
    """The reference of one graph: an ``nn.Module`` or any callable, or None to leave it alone.

    Asked once per graph per process, when its first test runs, for graphs whose reference is
    the default (their fp32 file) or ``kind = "module"`` in ``[references.<graph>]``. The callable
    gets the ONNX inputs in the graph's input order (a torch module as tensors, in ``eval()`` and
    under ``torch.inference_mode()``; a plain function as numpy arrays) and its tuple, list or
    dict return is named in the graph's output order. Return ``(module, InputMapping(...))``
    (``pytest_onnxparity.references.config``) to map arguments and outputs, or set ``inputs`` /
    ``outputs`` in the config table. The first non-None answer wins.
    """


@pytest.hookspec(firstresult=True)
def pytest_onnxparity_inputs(graph: str, config: pytest.Config) -> Any:
    """Real input sets for one graph (e.g. log-mel features of real clips), or None.

    Return ``{input_name: array}`` (one set, named ``hook``), ``{set_name: {input_name: array}}``,
    or a list of ``{input_name: array}`` (sets ``hook0``, ``hook1``, ...). Each set is a test id
    of its own, beside the synthesized sets (``synthesize = false`` in ``[references.<graph>]``
    drops those); arrays must match the graph's input names, dtypes and fixed dims. Asked once
    per graph per process, at collection. The first non-None answer wins.
    """


@pytest.hookspec
def pytest_onnxparity_folder_items(
    parent: pytest.Collector, engine: ParityEngine
) -> list[pytest.Item] | None:
    """Extra test items for the export folder as a whole (e.g. a pipeline spanning graphs).

    Called while the folder's node is collected, after its graphs; return items made with
    ``SomeItem.from_parent(parent, name=...)`` or None. All implementations' lists are joined.
    """


@pytest.hookspec(firstresult=True)
def pytest_onnxparity_pipeline_adapter(config: pytest.Config) -> Any:
    """The pipeline adapter the sequence gates run on every clip, or None.

    Return a callable ``adapter(graphs, clip, *, forced_tokens=None) -> PipelineOutput``
    (``pytest_onnxparity.PipelineAdapter``). ``graphs`` maps each graph of the
    pipeline (``encoder``, ``decoder_init``…) to the runner of the file one variant set chose
    for it (``runner.run({input: array}) -> {output: array}``); ``clip`` is a
    ``pytest_onnxparity.Clip`` (mono float32 ``audio``, ``sample_rate``, ground-truth
    ``text``). With ``forced_tokens`` it feeds those tokens instead of its predictions and
    returns every step's logits. Optional attributes: ``sample_rate`` (clips are resampled to
    it) and ``graphs`` (the pipeline's graph names when ``[sequence] graphs`` does not list
    them). Asked once per process, at collection, when ``[sequence]`` or ``--parity-clips``
    asks for sequence gates. See ``docs/sequence.md``.
    """


@pytest.hookspec(firstresult=True)
def pytest_onnxparity_reference_pipeline(config: pytest.Config) -> Any:
    """The upstream pipeline the fp32 ONNX pipeline is gated against, or None.

    Return a callable ``pipeline(clip) -> PipelineOutput`` that decodes one clip with the model
    the export came from (a PyTorch greedy loop, ``transformers``' ``generate()``…), returning
    the same tokens (and text, and optionally ``step_logits``) as the ONNX adapter. With it,
    the sequence gates add ``sequence[fp32]`` (and one test per clip): the fp32 ONNX set against
    this pipeline under ``[sequence.reference_gates]`` (identical tokens by default), and every
    variant set's record and card row report it against both the PyTorch and the fp32 ONNX
    pipeline. Each clip is decoded by it once per process. Asked once per process, at
    collection, when sequence gates are on. See ``docs/sequence.md``.
    """
