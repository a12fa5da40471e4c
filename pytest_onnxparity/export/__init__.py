"""The export folder: which file is which graph, variant and tier, and what each weighs."""
