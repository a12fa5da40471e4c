"""``python -m pytest_onnxparity``: the command line for stored results (``cli.main``)."""

from pytest_onnxparity.cli.main import main

raise SystemExit(main())
