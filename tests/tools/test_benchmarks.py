"""The speed benchmark (benchmarks/bench_plugin.py) runs end to end on the bundled example.

A smoke test: one round, no warm-up, and no timing asserted — timings come from the benchmark
run on its own (docs/performance.md), never from the test suite.
"""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path
from types import ModuleType

from tests.paths import EXAMPLE, REPO


def load_benchmark() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "bench_plugin", REPO / "benchmarks" / "bench_plugin.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # dataclasses look their module up in sys.modules while the module runs.
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_benchmark_produces_every_figure_on_the_example_folder(tmp_path: Path) -> None:
    bench = load_benchmark()
    folder = tmp_path / "export"
    shutil.copytree(EXAMPLE, folder, ignore=shutil.ignore_patterns("reference", "*.toml"))

    document = bench.measure_all(
        folder,
        tmp_path / "work",
        repeats=1,
        import_repeats=1,
        copies=2,
        metrics_elements=(4096,),
        xdist=False,
        warmup=False,
        keep_probe=False,
    )

    assert set(bench.SECTIONS) <= set(document)
    speed = document["speed"]
    assert set(speed["median_s"]) == {
        "python_empty",
        "pytest_empty",
        "plugin",
        "plugin_no_weights",
        "handwritten",
        "handwritten_ort_defaults",
    }
    # The script is a fair baseline only if it makes the same comparisons with the same verdict.
    assert speed["plugin_tests"] == speed["handwritten_cases"] == 6
    # The default run adds one weights test per variant file (2 graphs, 3 variants each).
    assert speed["plugin_weights_tests"] == 6
    assert speed["same_verdict"]
    for key in ("importtime_total_ms", "collect_added_ms", "inert_run_added_import_ms"):
        assert key in document["imports"]
    serial = document["reads"]["serial"]["main"]
    assert serial["files_with_sessions"] == document["reads"]["files"] == 8
    assert set(document["memory"]["peak_rss_mb"]) == {"plugin", "handwritten"}
    assert document["metrics"][0]["elements"] == 4096
    assert any(line.startswith("speed") for line in bench.table_lines(document))
