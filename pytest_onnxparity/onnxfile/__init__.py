"""ONNX files read as data: the wire-format scan, signatures, graph indexes and dequantized
weights. Pure: no onnxruntime, nothing executed."""
