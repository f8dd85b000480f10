"""Tasks of the plugin. Importing a module registers its task with fairseq."""
from . import xtreme_sentence  # noqa: F401
from . import xtreme_tagging  # noqa: F401
from . import xtreme_qa  # noqa: F401
from . import glue  # noqa: F401
from . import masked_lm  # noqa: F401
from . import sentence_distillation  # noqa: F401
