"""Ready-made suites: declarative TOML files a run starts from, and the checks they add."""
