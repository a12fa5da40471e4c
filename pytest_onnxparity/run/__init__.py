"""One run's working state: settings resolved once, real input sets, and the engine that
caches references, inputs and sessions per worker."""
