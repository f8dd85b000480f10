from . import fused_adam  # noqa: F401  (registers ``fused_adamw``)
