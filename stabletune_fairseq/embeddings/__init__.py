"""Sentence embeddings of any of our checkpoints, evaluated as XTREME evaluates its retrieval tasks (Tatoeba, BUCC)
and as STS is evaluated (Pearson and Spearman of cosine similarity against gold scores); docs/embeddings.md.

One module a step: ``readers`` (raw files -> plain Python data, ``InputFormatError`` for malformed rows),
``encoder`` (a checkpoint -> float32 sentence embeddings), ``scores`` (numpy-only retrieval and mining metrics; the
correlations are ``metrics/correlation.py``), ``evaluation`` (a task's files through the encoder and the metrics into
a results dict; ``report/embedding_results.py`` renders it); ``hf_teacher`` (a sentence-transformers teacher with its
own tokenizer, read with transformers) and ``sentence_bank`` (its embeddings of a parallel folder's sources, written
once and checked, for ``sentence_distillation --teacher-bank``). The command is ``stabletune-embed-eval``
(``cli/embed_eval.py``). The layer sits between models and tasks because training uses it too: the
``sentence_distillation`` task scores STS and Tatoeba at validation, its criterion loads the teacher's encoder.
"""
