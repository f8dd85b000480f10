"""Records -> a stored task folder that fairseq reads (one module per task family), written atomically."""
