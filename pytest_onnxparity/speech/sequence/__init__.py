"""Sequence gates: a user's pipeline adapter run on clips for the reference graphs and each
variant set, compared token by token and transcript by transcript, gated per clip and over the
corpus."""
