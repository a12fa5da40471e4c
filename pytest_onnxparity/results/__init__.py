"""Results: records, the metadata block, Markdown, baselines and terminal tables."""
