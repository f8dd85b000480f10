"""Prediction with a fine-tuned checkpoint: the checkpoint and its task folder (``checkpoint_loading``), raw
inputs read and checked (``raw_inputs``), encoded as preprocessing encodes a split (``raw_datasets``), and
the model that predicts on them (``loaded_model``; ``stabletune_fairseq.load_model``). Evaluation loads its
checkpoints here too. Nothing is imported here: the plugin's import (what fairseq needs) stays light."""
