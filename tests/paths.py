"""Where the repository's files are, for tests at any depth of ``tests/``."""

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "fixtures"
EXAMPLE = FIXTURES / "example"
SUITES = REPO / "suites"
DATA = REPO / "tests" / "data"
CLIPS_DIR = DATA / "clips"
