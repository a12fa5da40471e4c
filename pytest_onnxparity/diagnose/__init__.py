"""Diagnosis beyond the verdict: graph health, quantization coverage, and localizing where a
variant drifts."""
