"""Benchmark probe, active only when ``BENCH_EVENTS`` names a folder (``bench_plugin.py`` puts
this folder on ``PYTHONPATH``): appends to ``$BENCH_EVENTS/<pid>.jsonl`` one line per Python-level
read of a ``.onnx`` file (``onnx.load`` goes through ``open``) and per onnxruntime session built
from a path and freed, tagged with the xdist worker, so a benchmark can count per process how
often each file was read and how many sessions were alive at once.
"""

from __future__ import annotations

import os

_EVENTS = os.environ.get("BENCH_EVENTS")

if _EVENTS:
    import builtins
    import io
    import json
    import weakref
    from typing import Any

    _original_open = io.open
    _log = os.path.join(_EVENTS, f"{os.getpid()}.jsonl")

    def _event(kind: str, path: str) -> None:
        line = {
            "kind": kind,
            "path": os.path.abspath(path),
            "process": os.environ.get("PYTEST_XDIST_WORKER", "main"),
        }
        with _original_open(_log, "a", encoding="utf-8") as log:
            log.write(json.dumps(line) + "\n")

    def _counting_open(file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        if isinstance(file, str | bytes | os.PathLike) and not set(mode) & set("wax+"):
            name = os.fsdecode(os.fspath(file))
            if name.endswith(".onnx"):
                _event("read", name)
        return _original_open(file, mode, *args, **kwargs)

    builtins.open = io.open = _counting_open

    import onnxruntime

    _original_init = onnxruntime.InferenceSession.__init__

    def _counting_init(self: Any, path_or_bytes: Any, *args: Any, **kwargs: Any) -> None:
        _original_init(self, path_or_bytes, *args, **kwargs)
        if isinstance(path_or_bytes, str | os.PathLike):
            path = os.fspath(path_or_bytes)
            _event("session", path)
            weakref.finalize(self, _event, "release", path)

    onnxruntime.InferenceSession.__init__ = _counting_init  # type: ignore[method-assign]
