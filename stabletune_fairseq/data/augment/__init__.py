"""Augmented views of an example, drawn on the fly from its words (one implementation each)."""
