"""Speech: audio clips, transcripts, pipeline (sequence) gates and streaming comparisons."""
