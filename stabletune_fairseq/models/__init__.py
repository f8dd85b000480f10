"""Models of the plugin. Importing a module registers its model and architectures with fairseq."""

from . import stabletune_xlmr  # noqa: F401
