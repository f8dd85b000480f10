"""The datasets fairseq reads at run time: views drawn per epoch, chunks, windows, complete batches."""
