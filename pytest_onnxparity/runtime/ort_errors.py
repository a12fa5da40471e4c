"""onnxruntime's error text reduced to its cause, and the fix that cause calls for.

onnxruntime prefixes the reason it refuses a model with status codes, "Load model from … failed",
the C++ source location and the full signature of the function that raised; a message cut to a
fixed length keeps that noise and drops the reason ("Unsupported model IR version: 99, max
supported IR version: 14"). :func:`cause` strips the noise and shortens only what is still long
from the middle, so the first and the last sentence (which carries the numbers) stay;
:func:`load_fix` and :func:`run_fix` name the next step for the causes seen in practice.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

MAX_CAUSE = 300

_STATUS = re.compile(r"\[ONNXRuntimeError\]\s*:\s*\d+\s*:\s*[A-Z_]+\s*:\s*")
_LOAD = re.compile(r"Load model from .*? failed:\s*")
_INIT = re.compile(r"Exception during initialization:\s*")
_RUNNING = re.compile(
    r"Non-zero status code returned while running (\w+) node\. Name:'([^']*)' Status Message:\s*"
)
# "/onnxruntime_src/onnxruntime/core/graph/model.cc:256 " or "tensorprotoutils.cc:2201 "
_LOCATION = re.compile(r"(?:\S*/)?[\w.-]+\.(?:cc|cpp|h|hpp|cu):\d+\s+")
_ENFORCE = re.compile(r"^[^.]*? was false\.\s+")


def cause(error: BaseException | str) -> str:
    """The reason in onnxruntime's error text, on one line, at most :data:`MAX_CAUSE` long."""
    text = " ".join(str(error).split())
    text = _STATUS.sub("", text)
    text = _LOAD.sub("", text)
    text = _INIT.sub("", text)
    node = ""
    running = _RUNNING.search(text)
    if running:
        op, name = running.groups()
        node = f"{op} node {name!r}: " if name else f"{op} node: "
        text = text[: running.start()] + text[running.end() :]
    text = _without_locations(text)
    text = _ENFORCE.sub("", text)
    text = _STATUS.sub("", text).strip() or type(error).__name__
    return node + _shortened(text)


def _without_locations(text: str) -> str:
    """Drop each ``file.cc:NN`` and the C++ signature after it (``type ns::F(args…) ``), or
    the bare function name (``GetExtDataFromTensorProto``)."""
    while True:
        match = _LOCATION.search(text)
        if match is None:
            return text
        rest = text[match.end() :]
        end = _signature_end(rest)
        text = text[: match.start()] + rest[end:].lstrip()


def _signature_end(rest: str) -> int:
    paren = rest.find("(")
    space = rest.find(" ")
    if paren == -1 or (space != -1 and space < paren and not _is_type_prefix(rest[:paren])):
        return space + 1 if space != -1 else len(rest)
    depth = 0
    for index in range(paren, len(rest)):
        if rest[index] == "(":
            depth += 1
        elif rest[index] == ")":
            depth -= 1
            if depth == 0:
                return index + 1
    return len(rest)


def _is_type_prefix(head: str) -> bool:
    # "void onnxruntime::model_load_utils::ValidateOpsetForDomain(" or "onnxruntime::Model::Model("
    words = head.split()
    return 1 <= len(words) <= 3 and all(re.fullmatch(r"[\w:<>,*&~]+", word) for word in words)


def _shortened(text: str) -> str:
    if len(text) <= MAX_CAUSE:
        return text
    sentences = re.split(r"(?<=\.)\s+", text)
    # The sentences with numbers carry the cause ("Opset 99 …", "… till opset 28.").
    numbered = [sentence for sentence in sentences if re.search(r"\d", sentence)]
    for chosen in (numbered, [sentences[0], sentences[-1]]):
        joined = " … ".join(dict.fromkeys(chosen))
        if len(sentences) > 1 and chosen and len(joined) <= MAX_CAUSE:
            return joined
    half = MAX_CAUSE // 2 - 1
    return f"{text[:half]} … {text[-half:]}"


def load_fix(text: str, sidecars: Sequence[str] = ()) -> str:
    """The next step for a model onnxruntime refused to load."""
    lowered = text.lower()
    if "ir version" in lowered:
        limit = re.search(r"max supported ir version:\s*(\d+)", lowered)
        most = f" (this build reads IR version <= {limit.group(1)})" if limit else ""
        return f"re-export with an older onnx, or upgrade onnxruntime{most}"
    if "opset" in lowered and ("till opset" in lowered or "under development" in lowered):
        limit = re.search(r"till opset (\d+)", lowered)
        most = f" <= {limit.group(1)}" if limit else " this onnxruntime supports"
        return f"re-export with an opset{most}, or upgrade onnxruntime"
    if "not_implemented" in lowered or "could not find an implementation" in lowered:
        return (
            "an operator it uses has no kernel in this onnxruntime build/provider — upgrade "
            "onnxruntime or re-export without that op"
        )
    if "external" in lowered or "no such file" in lowered or "out of bounds" in lowered:
        named = f" ({', '.join(sidecars)})" if sidecars else ""
        return (
            f"its external data file{named} is missing, shorter than the model says or "
            "unreadable — copy it again in full, next to the model"
        )
    return "re-export the model or remove it from the export folder"


def run_fix(text: str, dims: Mapping[str, int] | None = None) -> str:
    """The next step for a model that loaded but failed on the inputs it was given."""
    lowered = text.lower()
    if dims and ("shape" in lowered or "dimension" in lowered or "reshape" in lowered):
        given = ", ".join(f"{name}={size}" for name, size in dims.items())
        return (
            f"the inputs were synthesized with dynamic dims {given}; if the model needs other "
            "sizes (a multiple, a fixed length), set them with --parity-dim NAME=SIZE or [dims] "
            "in parity.toml"
        )
    return (
        "check the input shapes and dtypes the model expects (Netron shows them) and the "
        "inputs given ([graphs.<graph>.inputs], --parity-dim)"
    )
