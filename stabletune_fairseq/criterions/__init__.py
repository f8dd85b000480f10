"""Criterions of the plugin. Importing a module registers its criterion with fairseq."""

from . import (
    masked_lm,  # noqa: F401
    sentence_distillation,  # noqa: F401
    stability_consistency,  # noqa: F401
    stability_distillation,  # noqa: F401
)
