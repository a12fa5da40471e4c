"""References: what a graph's variants are compared with (ONNX, torch, TorchScript,
recordings), and the [references] config table."""
