"""The pytest glue: the only package that imports pytest. Options, hooks, items, fixtures,
the reporter, and one module per feature's glue."""
