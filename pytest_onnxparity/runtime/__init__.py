"""Running graphs: onnxruntime sessions and synthesized input sets."""
