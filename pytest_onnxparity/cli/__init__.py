"""``python -m pytest_onnxparity``: work on stored results without running pytest.

``render`` prints a results file as the run's terminal table, its Markdown or its metadata block;
``compare OLD NEW`` gives the baseline verdict between two runs; ``suggest`` writes limits from a
results file. A top layer beside ``plugin``: it reuses ``results`` for every rendering and never
imports pytest.
"""
