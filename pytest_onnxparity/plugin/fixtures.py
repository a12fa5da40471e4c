"""Fixtures for users' own parity tests: cases, loaded sessions, and ``assert_parity``.

@pytest.mark.parity(graph="encoder", rel_l2=0.02)
def test_encoder(parity_case, assert_parity):
    assert_parity(parity_case)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest

from pytest_onnxparity.plugin import keys

if TYPE_CHECKING:
    import numpy as np

    from pytest_onnxparity.export.folder import ExportFolder
    from pytest_onnxparity.run.cases import ParityCase
    from pytest_onnxparity.run.engine import ParityEngine
    from pytest_onnxparity.runtime.inputs import InputSet
    from pytest_onnxparity.runtime.sessions import OnnxRunner

NO_EXPORT = "no export folder: pass --onnx-dir DIR (or set parity_onnx_dir) to run parity tests"


@dataclass
class LoadedCase:
    """A graph variant ready to run: sessions, inputs, and both sides' outputs."""

    engine: ParityEngine
    case: ParityCase

    @property
    def graph(self) -> str:
        return self.case.graph.name

    @property
    def variant(self) -> str:
        return self.case.variant.variant

    @property
    def tier(self) -> str:
        return self.case.variant.tier

    @property
    def reference_session(self) -> OnnxRunner:
        return self.engine.runner(self.case.graph.reference_file)

    @property
    def variant_session(self) -> OnnxRunner:
        return self.engine.runner(self.case.variant)

    @property
    def input_set(self) -> str:
        """The input set's name, as in the generated tests' ids (``default``, ``frames=64``)."""
        return self.case.input_set_name

    @property
    def inputs(self) -> InputSet:
        return self.engine.inputs(self.case.graph, self.case.input_key)

    def reference_outputs(self) -> dict[str, np.ndarray]:
        return self.engine.reference_outputs(self.case.graph, self.inputs)

    def variant_outputs(self) -> dict[str, np.ndarray]:
        return self.variant_session.run(self.inputs.arrays, free_arena=True)


def parametrize_cases(metafunc: pytest.Metafunc) -> None:
    """One ``parity_case`` per graph × variant × input set (the generated tests' sets: sweep
    points, ``input_data``, recordings, the inputs hook), narrowed by the test's parity marker."""
    engine = metafunc.config.stash.get(keys.ENGINE, None)
    if engine is None:
        metafunc.parametrize(
            "parity_case",
            [pytest.param(None, marks=pytest.mark.skip(reason=NO_EXPORT))],
            indirect=True,
        )
        return
    from pytest_onnxparity.run.cases import ParityCase
    from pytest_onnxparity.runtime.inputs import DEFAULT_SET

    marker = metafunc.definition.get_closest_marker("parity")
    wanted = dict(marker.kwargs) if marker else {}
    params = []
    for graph in engine.folder.graphs:
        tags = [t for t in graph.variants if _selected(wanted, graph.name, t, graph.file(t).tier)]
        input_keys = engine.input_keys(graph) if tags else []
        for tag in tags:
            for key in input_keys:
                suffix = "" if key.name == DEFAULT_SET else f"-{key.name}"
                params.append(
                    pytest.param(
                        ParityCase.for_key(graph, graph.file(tag), key),
                        id=f"{graph.name}-{tag}{suffix}",
                    )
                )
    if not params:
        params = [pytest.param(None, marks=pytest.mark.skip(reason=f"no variant matches {wanted}"))]
    metafunc.parametrize("parity_case", params, indirect=True)


def _selected(wanted: Mapping[str, Any], graph: str, variant: str, tier: str) -> bool:
    def matches(key: str, value: str) -> bool:
        choice = wanted.get(key)
        if choice is None:
            return True
        return value in ([choice] if isinstance(choice, str) else list(choice))

    return matches("graph", graph) and matches("variant", variant) and matches("tier", tier)


def _engine(request: pytest.FixtureRequest) -> ParityEngine:
    engine = request.config.stash.get(keys.ENGINE, None)
    if engine is None:
        pytest.skip(NO_EXPORT)
    return engine


@pytest.fixture(scope="session")
def parity_engine(request: pytest.FixtureRequest) -> ParityEngine:
    """The run's engine (settings, discovered folder, cached sessions)."""
    return _engine(request)


@pytest.fixture(scope="session")
def parity_export(parity_engine: ParityEngine) -> ExportFolder:
    """The discovered export folder: graphs, variants, files and sizes."""
    return parity_engine.folder


@pytest.fixture
def parity_case(request: pytest.FixtureRequest) -> LoadedCase:
    """One graph × variant × input set (parametrized over the folder; narrow it with the
    parity marker)."""
    engine = _engine(request)
    return LoadedCase(engine, request.param)


@pytest.fixture
def parity_session(parity_engine: ParityEngine) -> Callable[[str, str], OnnxRunner]:
    """``parity_session(graph, variant)`` -> the cached ONNX Runtime session of that file."""

    def get(graph: str, variant: str) -> OnnxRunner:
        return parity_engine.runner(parity_engine.folder.graph(graph).file(variant))

    return get


@pytest.fixture
def assert_parity(request: pytest.FixtureRequest) -> Callable[..., None]:
    """Apply the parity gates in your own test.

    ``assert_parity(parity_case)`` runs the case like a generated test; ``assert_parity(ref, var,
    tier="int8", rel_l2=0.05)`` compares two dicts of named arrays you computed. Limits: keyword
    arguments > ``@pytest.mark.parity`` > ``--parity-tolerance`` > config file > tier default.
    """
    from pytest_onnxparity.plugin.run import ensure_settings

    settings = ensure_settings(request.config)
    marker = request.node.get_closest_marker("parity")
    marker_kwargs = dict(marker.kwargs) if marker else {}

    def check(
        reference: LoadedCase | Mapping[str, np.ndarray],
        variant: Mapping[str, np.ndarray] | None = None,
        *,
        graph: str = "custom",
        variant_name: str = "custom",
        tier: str = "fp32",
        **tolerance: Any,
    ) -> None:
        __tracebackhide__ = True
        from pytest_onnxparity.plugin.run import marker_problem
        from pytest_onnxparity.run.settings import marker_layer

        problem = marker_problem((), tolerance)
        if problem:
            pytest.fail(
                f"assert_parity: {problem.replace('@pytest.mark.parity', 'keyword')}", pytrace=False
            )
        marker_limits = marker_layer(marker_kwargs, "@pytest.mark.parity")
        call_limits = marker_layer(tolerance, "assert_parity")
        layer = {**marker_limits, **call_limits}
        custom = not isinstance(reference, LoadedCase)
        if isinstance(reference, LoadedCase):
            record = reference.engine.check(reference.case, request.node.nodeid, layer)
        else:
            record = _custom_record(
                settings, request.node.nodeid, reference, variant, graph, variant_name, tier, layer
            )
        _finish(
            request,
            record,
            marker_keys=set(marker_limits),
            call_keys=set(call_limits),
            custom=custom,
        )

    return check


def _custom_record(
    settings: Any,
    nodeid: str,
    reference: Mapping[str, np.ndarray],
    variant: Mapping[str, np.ndarray] | None,
    graph: str,
    variant_name: str,
    tier: str,
    layer: Mapping[str, float | int | str],
) -> Any:
    from pytest_onnxparity.run.user_arrays import check_arrays

    if variant is None:
        pytest.fail(
            "assert_parity(reference, variant): the variant's outputs are missing", pytrace=False
        )
    return check_arrays(
        settings,
        nodeid,
        reference,
        variant,
        graph=graph,
        variant_name=variant_name,
        tier=tier,
        layer=layer,
    )


def _finish(request: pytest.FixtureRequest, record: Any, **where_limits_came_from: Any) -> None:
    __tracebackhide__ = True
    from pytest_onnxparity.plugin.items import failure_text
    from pytest_onnxparity.plugin.results import attach_record

    attach_record(request.node, record.to_json())
    title = f"{record.graph}[{record.variant}]"
    if record.error is not None:
        pytest.fail(f"{title}: {record.error}", pytrace=False)
    if not record.passed:
        pytest.fail(failure_text(title, record, **where_limits_came_from), pytrace=False)
