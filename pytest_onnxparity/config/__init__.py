"""The run's configuration: the project's config file, tolerances and their precedence."""

from pytest_onnxparity._moved import moved_getattr

# Release 0.1 had a module of this name: its names still resolve, with a DeprecationWarning.
__getattr__ = moved_getattr("config")
