"""Readers for the XTREME raw formats, text encoding, binarised datasets and their metadata."""
