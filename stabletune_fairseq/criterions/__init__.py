"""Criterions of the plugin. Importing a module registers its criterion with fairseq."""
from . import stability_consistency  # noqa: F401
from . import stability_distillation  # noqa: F401
from . import masked_lm  # noqa: F401
from . import sentence_distillation  # noqa: F401
