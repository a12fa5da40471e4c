"""Audio for the speech gates: clips from a folder or a ``datasets`` dataset, where they come from,
and signals to stream through a voice-activity detector."""
