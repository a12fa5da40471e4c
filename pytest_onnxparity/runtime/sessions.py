"""ONNX Runtime sessions: options, clear load errors, and a per-worker cache."""

from __future__ import annotations

import contextlib
import io
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pytest_onnxparity.onnxfile.signature import TensorSpec
from pytest_onnxparity.runtime.crash_names import call_naming
from pytest_onnxparity.runtime.ort import import_onnxruntime
from pytest_onnxparity.runtime.ort_errors import cause, load_fix, run_fix

GRAPH_OPT_LEVELS = {
    "disable": "ORT_DISABLE_ALL",
    "basic": "ORT_ENABLE_BASIC",
    "extended": "ORT_ENABLE_EXTENDED",
    "all": "ORT_ENABLE_ALL",
}


DEFAULT_RUN_TIMEOUT_S = 600.0


class ModelLoadError(RuntimeError):
    """onnxruntime could not load or run a model; the message names the file and the fix."""


@dataclass(frozen=True)
class SessionSettings:
    """How sessions are built; recorded beside every result."""

    providers: tuple[str, ...] = ("CPUExecutionProvider",)
    intra_op_threads: int = 0
    inter_op_threads: int = 0
    graph_optimization_level: str = "all"
    deterministic: bool = False
    # onnxruntime's default is on: idle pool threads busy-wait for the next run. A parity run
    # keeps a graph's reference and variant sessions alive together, and their spinning pools
    # take the cores from the session that is running and from the comparisons.
    allow_spinning: bool = False
    # Every inference is stopped after this many seconds (a Loop of 2**62 iterations must not
    # hang the run); generous, as a big model on a small CPU may take minutes.
    run_timeout_s: float = DEFAULT_RUN_TIMEOUT_S

    def to_json(self) -> dict[str, object]:
        return {
            "providers": list(self.providers),
            "intra_op_threads": self.intra_op_threads,
            "inter_op_threads": self.inter_op_threads,
            "graph_optimization_level": self.graph_optimization_level,
            "deterministic": self.deterministic,
            "allow_spinning": self.allow_spinning,
            "run_timeout_s": self.run_timeout_s,
        }

    def session_options(self) -> Any:
        ort = import_onnxruntime()

        options = ort.SessionOptions()
        options.log_severity_level = 3
        options.graph_optimization_level = getattr(
            ort.GraphOptimizationLevel, GRAPH_OPT_LEVELS[self.graph_optimization_level]
        )
        options.intra_op_num_threads = self.intra_op_threads
        options.inter_op_num_threads = self.inter_op_threads
        spinning = "1" if self.allow_spinning else "0"
        options.add_session_config_entry("session.intra_op.allow_spinning", spinning)
        options.add_session_config_entry("session.inter_op.allow_spinning", spinning)
        if self.deterministic:
            # Bit-stable CPU results: deterministic kernels, one thread, no parallel executor.
            options.use_deterministic_compute = True
            options.intra_op_num_threads = 1
            options.inter_op_num_threads = 1
            options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        return options


@dataclass
class OnnxRunner:
    """An ONNX Runtime session over one model file; maps named inputs to named outputs."""

    path: Path
    settings: SessionSettings
    session: Any = field(repr=False)
    # False once onnxruntime refused to shrink this session's arena (its CPU allocator is no
    # arena): its runs then keep their memory.
    can_free_arena: bool = field(default=True, repr=False)

    @property
    def inputs(self) -> tuple[TensorSpec, ...]:
        return tuple(TensorSpec.from_ort(arg) for arg in self.session.get_inputs())

    @property
    def outputs(self) -> tuple[TensorSpec, ...]:
        return tuple(TensorSpec.from_ort(arg) for arg in self.session.get_outputs())

    @property
    def providers(self) -> tuple[str, ...]:
        return tuple(self.session.get_providers())

    def run(
        self,
        arrays: Mapping[str, np.ndarray],
        *,
        free_arena: bool = False,
        dims: Mapping[str, int] | None = None,
    ) -> dict[str, np.ndarray]:
        """Run the model on ``arrays`` (extra names are ignored; missing ones are an error).

        ``free_arena`` gives the memory of the run's intermediate tensors back when it ends, for
        a session that runs once on large inputs while other sessions stay alive (a parity
        check): otherwise every live session keeps its largest run's activations, and the next
        session's first run page-faults in fresh memory. A session run step after step keeps
        its arena (the default), as a deployment does. ``dims``: the synthesized dynamic dims
        of the inputs, named in the message when a shape error may come from them.

        Every run has a watchdog: past ``settings.run_timeout_s`` it is stopped and fails."""
        feed = self.feed(arrays)
        watchdog = _Watchdog(self.settings.run_timeout_s)
        try:
            with watchdog:
                values = call_naming(
                    self.path,
                    "running",
                    self._run,
                    feed,
                    free_arena and self.can_free_arena,
                    watchdog,
                )
        except Exception as error:  # onnxruntime raises its own untyped errors
            if watchdog.fired:
                raise ModelLoadError(
                    f"{self.path}: inference ran past the {self.settings.run_timeout_s:g} s limit "
                    "and was stopped (a Loop or Scan with a huge trip count?); if the model is "
                    "just slow, raise [session] run_timeout in parity.toml"
                ) from None
            reason = cause(error)
            raise ModelLoadError(
                f"{self.path}: onnxruntime failed to run it ({reason}); {run_fix(reason, dims)}"
            ) from None
        names = [arg.name for arg in self.session.get_outputs()]
        return dict(zip(names, values, strict=True))

    def feed(self, arrays: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The session's feed from ``arrays``: its inputs by name, float inputs cast to the
        graph's float precision (an fp16 graph gets fp16 inputs)."""
        specs = self.inputs
        missing = [spec.name for spec in specs if spec.name not in arrays]
        if missing:
            raise ModelLoadError(
                f"{self.path}: inputs {missing} were not supplied (got {sorted(arrays)}); "
                "the variant's input names differ from its reference — re-export with the same "
                "names"
            )
        return {spec.name: _as_input(arrays[spec.name], spec) for spec in specs}

    def _run(
        self, feed: Mapping[str, np.ndarray], free_arena: bool, watchdog: _Watchdog
    ) -> list[Any]:
        if not free_arena:
            return list(self.session.run(None, feed, watchdog.options))
        # Shrink the session's CPU memory arena after the run (whatever its providers, a
        # session allocates on the CPU too; where that allocator is no arena, onnxruntime
        # refuses and the run goes on without).
        watchdog.options.add_run_config_entry("memory.enable_memory_arena_shrinkage", "cpu:0")
        try:
            return list(self.session.run(None, feed, watchdog.options))
        except Exception as error:
            # "Did not find an arena based allocator ... in the memory arena shrink list".
            if "shrink list" not in str(error):
                raise
            self.can_free_arena = False
            return list(self.session.run(None, feed, watchdog.renew()))


class _Watchdog:
    """Run options whose ``terminate`` flag a timer thread sets after ``limit_s`` seconds:
    onnxruntime checks it between nodes and in every Loop iteration, and stops the run."""

    def __init__(self, limit_s: float) -> None:
        ort = import_onnxruntime()

        self.limit_s = limit_s
        self.options = ort.RunOptions()
        self.fired = False
        self._timer = threading.Timer(limit_s, self._fire)
        self._timer.daemon = True

    def _fire(self) -> None:
        self.fired = True
        self.options.terminate = True  # read at fire time: renew() may have replaced them

    def renew(self) -> Any:
        """Fresh run options (without config entries) that the watchdog stops from now on."""
        ort = import_onnxruntime()

        options = ort.RunOptions()
        options.terminate = self.fired
        self.options = options
        return options

    def __enter__(self) -> _Watchdog:
        self._timer.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._timer.cancel()


def _as_input(array: np.ndarray, spec: TensorSpec) -> np.ndarray:
    """Cast float inputs to the graph's float precision (an fp16 graph with fp16 inputs)."""
    array = np.asarray(array)
    if spec.dtype in {"float16", "float32", "float64"} and array.dtype.kind == "f":
        return array.astype(spec.dtype, copy=False)
    return array


def open_session(path: Path, settings: SessionSettings, *, arena: bool = True) -> OnnxRunner:
    """Load ``path`` into an ONNX Runtime session, turning its errors into one-line messages.

    ``arena=False`` turns onnxruntime's CPU memory arena off, so that memory a run frees goes
    back to the system at once instead of staying reserved (and growing by doubling) for the
    session's lifetime: for one-off runs whose peak memory must stay within a budget."""
    ort = import_onnxruntime()

    available = ort.get_available_providers()
    missing = [p for p in settings.providers if p not in available]
    if missing:
        raise ModelLoadError(
            f"execution provider(s) {missing} are not available in this onnxruntime build "
            f"(available: {', '.join(available)}); install the matching onnxruntime package "
            "or pass --parity-provider CPUExecutionProvider"
        )
    options = settings.session_options()
    if not arena:
        options.enable_cpu_mem_arena = False
    # onnxruntime prints a banner and retries when a session fails; the failure itself is what
    # the message reports, and a retry that succeeded fell back to other providers.
    banner = io.StringIO()
    try:
        with contextlib.redirect_stdout(banner):
            session = call_naming(
                path,
                "loading",
                ort.InferenceSession,
                str(path),
                options,
                list(settings.providers),
            )
    except Exception as error:  # onnxruntime raises Fail/InvalidGraph/NotImplemented, untyped
        reason = cause(error)
        raise ModelLoadError(
            f"{path}: onnxruntime cannot load this model ({reason}); "
            f"{load_fix(reason, _sidecar_names(path))}"
        ) from None
    if banner.getvalue():
        # The requested providers failed and onnxruntime fell back to others: the run would
        # measure another execution provider than the one asked for.
        reason = _fallback_reason(banner.getvalue())
        raise ModelLoadError(
            f"{path}: onnxruntime could not build a session with {list(settings.providers)} and "
            f"fell back to {session.get_providers()} ({reason}); fix the provider's "
            "installation or pass --parity-provider CPUExecutionProvider"
        )
    return OnnxRunner(path=path, settings=settings, session=session)


def _fallback_reason(banner: str) -> str:
    """The error in onnxruntime's fallback banner (``EP Error <error> when using [...]``)."""
    for line in banner.splitlines():
        if line.startswith("EP Error") and "****" not in line:
            return cause(line.removeprefix("EP Error").lstrip(": ").split(" when using ")[0])
    return "no reason given"


def _sidecar_names(path: Path) -> list[str]:
    """The external-data files ``path`` names (read only when its load failed)."""
    from pytest_onnxparity.onnxfile.protoscan import ProtoScanError, scan_model

    try:
        return sorted(set(scan_model(Path(path)).external_data_locations))
    except (OSError, ProtoScanError):
        return []


class SessionCache:
    """One session per (model file, settings) per worker, released graph by graph."""

    def __init__(self) -> None:
        self._sessions: dict[tuple[Path, SessionSettings], OnnxRunner] = {}
        self._failures: dict[tuple[Path, SessionSettings], ModelLoadError] = {}
        self.opened = 0

    def get(self, path: Path, settings: SessionSettings) -> OnnxRunner:
        key = (path, settings)
        if key in self._failures:
            raise self._failures[key]
        if key not in self._sessions:
            try:
                self._sessions[key] = open_session(path, settings)
            except ModelLoadError as error:
                self._failures[key] = error
                raise
            self.opened += 1
        return self._sessions[key]

    def release(self, paths: set[Path]) -> None:
        """Drop the sessions of ``paths`` (a graph whose tests are done)."""
        for key in [key for key in self._sessions if key[0] in paths]:
            del self._sessions[key]

    def __len__(self) -> int:
        return len(self._sessions)
