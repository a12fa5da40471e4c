"""A crash inside onnxruntime names the model file it was loading or running.

A native crash (a segmentation fault on a malformed graph) kills the process before any Python
error handling runs; what is left is the dump of Python frames that :mod:`faulthandler` writes
(pytest enables it in every process, xdist workers included). :func:`call_naming` runs a call
inside a frame whose *file name* is the model's path, so that dump reads::

    File "<onnxparity loading /exports/model_fp16.onnx>", line 2 in call_naming_the_model

The frame costs one function call; nothing is written anywhere unless the process crashes.
"""

from __future__ import annotations

import functools
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


def call_naming(path: Path | str, action: str, function: Callable[..., T], *args: Any) -> T:
    """``function(*args)``, in a frame that a crash dump shows as ``<onnxparity ACTION PATH>``."""
    return _trampoline(f"<onnxparity {action} {path}>")(function, args)


def _call(function: Callable[..., Any], args: tuple[Any, ...]) -> Any:
    return function(*args)


@functools.lru_cache(maxsize=512)
def _trampoline(label: str) -> Callable[[Callable[..., Any], tuple[Any, ...]], Any]:
    code = _call.__code__.replace(co_filename=label, co_name="call_naming_the_model")
    return types.FunctionType(code, {})
