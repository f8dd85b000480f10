"""Converters that turn other model formats into fairseq XLM-R checkpoints."""
