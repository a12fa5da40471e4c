"""Every setting of a run, resolved once: command line > ini > config file > default."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytest_onnxparity.config.project import ParityConfig
from pytest_onnxparity.config.tolerances import ScopedTolerance, Tolerance, ToleranceLayer, resolve
from pytest_onnxparity.runtime.inputs import InputPlan
from pytest_onnxparity.runtime.sessions import SessionSettings


@dataclass(frozen=True)
class Settings:
    """What the plugin does in this run; stored under a ``pytest.StashKey``."""

    onnx_dir: Path | None
    config: ParityConfig = field(default_factory=ParityConfig)
    plan: InputPlan = field(default_factory=InputPlan)
    session: SessionSettings = field(default_factory=SessionSettings)
    cli_tolerances: tuple[ScopedTolerance, ...] = ()
    json_path: Path | None = None
    suggest_path: Path | None = None
    suggest_margin: float = 1.5
    suggest_force: bool = False

    def tolerance(
        self,
        tier: str,
        graph: str,
        variant: str,
        output: str,
        marker_layer: ToleranceLayer | None = None,
        input_set: str | None = None,
    ) -> Tolerance:
        """The limits for one output (on one input set): marker > command line > config file
        > tier default."""
        matching = [t for t in self.cli_tolerances if t.applies_to(tier, graph, variant, output)]
        # Like the config file, a narrower scope wins whatever the order on the command line.
        matching.sort(key=lambda scoped: scoped.specificity)
        cli_layer = {scoped.key: scoped.value for scoped in matching}
        layers = [*self.config.tolerance_layers(tier, graph, variant, output, input_set), cli_layer]
        if marker_layer:
            layers.append(marker_layer)
        return resolve(tier, layers)

    def to_json(self) -> dict[str, Any]:
        return {
            "onnx_dir": None if self.onnx_dir is None else str(self.onnx_dir),
            "config_sources": list(self.config.sources),
            "inputs": {
                "seed": self.plan.seed,
                "float_range": list(self.plan.float_range),
                "int_range": list(self.plan.int_range),
                "dims": dict(self.plan.dims),
                "default_dim": self.plan.default_dim,
                "sweep": {name: list(sizes) for name, sizes in self.plan.sweep.items()},
                "batch": self.plan.batch,
                "draws": self.plan.draws,
                "past_length": self.plan.past_length,
            },
            "session": self.session.to_json(),
            "cli_tolerances": [
                {"scope": t.scope, "key": t.key, "value": t.value} for t in self.cli_tolerances
            ],
        }


def build_settings(
    *,
    onnx_dir: Path | None,
    config: ParityConfig,
    seed: int | None,
    dims: Sequence[tuple[str, int]],
    sweeps: Sequence[tuple[str, tuple[int, ...]]],
    providers: Sequence[str],
    threads: int | None,
    graph_opt: str | None,
    deterministic: bool | None,
    tolerances: Sequence[ScopedTolerance],
    json_path: Path | None,
    suggest_path: Path | None,
    suggest_margin: float,
    suggest_force: bool = False,
) -> Settings:
    """Combine command-line values (None = not given) with the config file and defaults."""
    default_plan = InputPlan()
    plan = InputPlan(
        seed=_first(seed, config.seed, default_plan.seed),
        float_range=_first(config.float_range, default_plan.float_range),
        int_range=_first(config.int_range, default_plan.int_range),
        dims={**config.dims, **dict(dims)},
        default_dim=_first(config.default_dim, default_plan.default_dim),
        sweep={**config.sweep, **dict(sweeps)},
    )
    default_session = SessionSettings()
    file_session = config.session
    session = SessionSettings(
        providers=tuple(providers) or file_session.providers or default_session.providers,
        intra_op_threads=_first(
            threads, file_session.intra_op_threads, default_session.intra_op_threads
        ),
        inter_op_threads=_first(file_session.inter_op_threads, default_session.inter_op_threads),
        graph_optimization_level=_first(
            graph_opt,
            file_session.graph_optimization_level,
            default_session.graph_optimization_level,
        ),
        deterministic=_first(
            deterministic, file_session.deterministic, default_session.deterministic
        ),
        allow_spinning=_first(file_session.allow_spinning, default_session.allow_spinning),
        run_timeout_s=_first(file_session.run_timeout, default_session.run_timeout_s),
    )
    return Settings(
        onnx_dir=onnx_dir,
        config=config,
        plan=plan,
        session=session,
        cli_tolerances=tuple(tolerances),
        json_path=json_path,
        suggest_path=suggest_path,
        suggest_margin=suggest_margin,
        suggest_force=suggest_force,
    )


def _first(*values: Any) -> Any:
    """The first value that is not None (so 0 and False given on the command line count)."""
    return next((value for value in values if value is not None), None)


def marker_layer(kwargs: Mapping[str, Any], where: str) -> dict[str, float | int | str]:
    """Tolerance keys given to ``@pytest.mark.parity(...)``, validated."""
    from pytest_onnxparity.config.tolerances import TOLERANCE_KEYS, validate_layer

    return validate_layer({k: v for k, v in kwargs.items() if k in TOLERANCE_KEYS}, where)
