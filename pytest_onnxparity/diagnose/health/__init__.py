"""Graph health: is each graph sound, and is it what the release claims, before numbers count.

One check per call of :func:`pytest_onnxparity.diagnose.health.run.run_health_check`, named
``health:<check>``, one module each: ``checker``, ``opset`` (and ``domains``),
``initializers``, ``structure``, ``outputs``. What each check enforces comes from the
``[health]`` table (:mod:`pytest_onnxparity.diagnose.health.config`). Models are read without
external data; tensor values are streamed one at a time from their sidecar files, so the
checks hold at most one tensor pair in memory whatever the model's size.
"""
