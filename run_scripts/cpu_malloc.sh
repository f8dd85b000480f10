# Sourced by the run scripts on CPU. glibc hands large freed blocks back to the OS and page-faults them in
# again at every step; for the big activations of a consistency step (rows and views in one batch) that made
# a 64-row training step 1.65x slower than two 32-row steps on 2 cores (measured; 1.02x with these settings).
# Keep freed memory in the process instead. Values already set by the user win.
export MALLOC_MMAP_THRESHOLD_=${MALLOC_MMAP_THRESHOLD_:-4294967296}
export MALLOC_TRIM_THRESHOLD_=${MALLOC_TRIM_THRESHOLD_:-68719476736}
export MALLOC_TOP_PAD_=${MALLOC_TOP_PAD_:-1073741824}
