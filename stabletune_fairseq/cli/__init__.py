"""Console scripts: stabletune-convert, stabletune-evaluate."""
