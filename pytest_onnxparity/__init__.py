"""pytest-onnxparity: gate ONNX exports and their quantized variants against a reference.

Importing this package is cheap: numpy, onnx, onnxruntime and torch are imported only by the
modules that use them.
"""

__version__ = "0.1.0"
