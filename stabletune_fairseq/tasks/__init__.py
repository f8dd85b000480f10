"""Tasks of the plugin. Importing a module registers its task with fairseq."""

from . import (
    glue,  # noqa: F401
    masked_lm,  # noqa: F401
    sentence_distillation,  # noqa: F401
    xtreme_qa,  # noqa: F401
    xtreme_sentence,  # noqa: F401
    xtreme_tagging,  # noqa: F401
)
