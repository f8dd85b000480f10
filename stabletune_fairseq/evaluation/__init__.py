"""Scoring a fine-tuned checkpoint on a task folder."""
