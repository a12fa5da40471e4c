"""Project-wide test setup: the model kit in fixtures/ is importable as ``modelkit``."""

import sys
from pathlib import Path

FIXTURES = Path(__file__).parent / "fixtures"
if str(FIXTURES) not in sys.path:
    sys.path.insert(0, str(FIXTURES))
