"""The data path, one step a folder (data flows top to bottom):

    readers/    raw files as users have them -> records (XTREME TSV, tagged words, SQuAD JSON, GLUE TSV,
                translate-train files); every bad row is an ``InputFormatError`` naming file and line
    binarize/   records -> a stored task folder (fairseq ``mmap`` token files, ``.npy`` labels,
                ``metadata.json``), one module per task family, written atomically (``atomic_dir.py``)
    datasets/   what fairseq reads at run time: pair views, tagging chunks, QA windows, complete batches

Modules here at the top are shared by more than one step: ``errors.py`` (the bad-input error),
``text_lines.py`` (line reading), ``encoding.py`` and ``qa_encoding.py`` (text -> dictionary ids),
``metadata.py`` (the stored folder's description), ``qa_windows.py`` (window geometry) and
``span_decoding.py`` (window logits -> answers).
"""
