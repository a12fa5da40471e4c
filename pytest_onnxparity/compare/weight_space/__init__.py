"""Weight-space parity: each reference weight matched to its form in a variant, dequantized and
compared against its storage tier's limits, without running either model.

``compare_weights(reference_path, variant_path, settings)`` returns a
:class:`~pytest_onnxparity.compare.weight_space.report.WeightParityReport`; the modules are, in
order of use: ``matching`` (which variant tensor stands for which weight), ``layout`` (reading
orientation, SmoothQuant folding), ``statistics`` (rel_l2, cosine, max_abs over range, the
worst element), ``limits`` (per-tier limits and the ``[weights]`` table), ``report`` (the
frozen results and the failure message) and ``run`` (the streaming loop)."""

from pytest_onnxparity.compare.weight_space.limits import (
    DEFAULT_LIMITS,
    WeightLimits,
    WeightSettings,
    parse_weights_settings,
)
from pytest_onnxparity.compare.weight_space.report import WeightComparison, WeightParityReport
from pytest_onnxparity.compare.weight_space.run import compare_weights

__all__ = [
    "DEFAULT_LIMITS",
    "WeightComparison",
    "WeightLimits",
    "WeightParityReport",
    "WeightSettings",
    "compare_weights",
    "parse_weights_settings",
]
