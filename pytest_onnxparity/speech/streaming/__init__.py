"""Streaming: a stateful graph (a voice-activity detector) driven over chunks, its state carried
from call to call, and a variant's per-chunk outputs compared with the reference's."""
