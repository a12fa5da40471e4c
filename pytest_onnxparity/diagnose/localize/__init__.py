"""Localizing divergence: which intermediate tensor of a variant first drifts from its reference,
and which layers add the most drift.

Both models are instrumented (:mod:`~pytest_onnxparity.diagnose.localize.instrument`), run on the
same inputs, and their activations are matched by tensor name across the rewrite
(:mod:`~pytest_onnxparity.diagnose.localize.measure`); what was found is a
:class:`~pytest_onnxparity.diagnose.localize.records.Localization`, drawn against depth by
:mod:`~pytest_onnxparity.diagnose.localize.plot`.
"""
