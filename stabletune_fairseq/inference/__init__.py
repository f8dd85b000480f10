"""Prediction with a fine-tuned checkpoint (opened by ``models/checkpoint_loading.py`` with its task folder): raw
inputs read and checked (``raw_inputs``), encoded as preprocessing encodes a split (``raw_datasets``), and
the model that predicts on them (``loaded_model``; ``stabletune_fairseq.load_model``), and the predictors of
each task family that evaluation shares (``predictors``). Nothing is imported here: the plugin's import (what
fairseq needs) stays light."""
