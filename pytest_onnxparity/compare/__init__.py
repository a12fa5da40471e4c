"""Comparing outputs: error statistics, gates, the parity verdict and pooled embeddings."""
