"""Sentence embeddings of any of our checkpoints, evaluated as XTREME evaluates its retrieval tasks (Tatoeba, BUCC)
and as STS is evaluated (Pearson and Spearman of cosine similarity against gold scores); docs/embeddings.md.

One module a step: ``readers`` (raw files -> plain Python data, ``InputFormatError`` for malformed rows),
``encoder`` (a checkpoint -> float32 sentence embeddings), ``scores`` (numpy-only metrics), ``evaluation`` (a
task's files through the encoder and the metrics into a results dict), ``report`` (that dict as markdown). The
command is ``stabletune-embed-eval`` (``cli/embed_eval.py``).
"""
