"""Task metrics, computed over whole subsets from summed counts."""
