"""og: a toolkit for OG-LLaVA (object-guided visual tokens for LLaVA-style models).

Registries of interchangeable components (`ENCODERS`, `SEGMENTERS`, `FUSIONS`, ...), frozen
specs that compose them into variants (`ModelSpec`, `preset`), and the entry points
`og.build(spec, ...)` and `og.load(path)` (the model issue). Importing og registers the model,
its config and processor with transformers' Auto classes (`og.model.auto`, lazily).
"""

from og.model.auto import install as _register_with_transformers_auto_classes
from og.presets import preset
from og.registry import (
    ALL_REGISTRIES,
    BENCHMARKS,
    DOWNSAMPLERS,
    ENCODERS,
    FUSIONS,
    LLMS,
    POSITIONS,
    PROJECTORS,
    SEGMENTERS,
    Registry,
)
from og.spec import ModelSpec

_register_with_transformers_auto_classes()  # when transformers' auto modules load (og.model.auto): no import cost

__version__ = "0.1.0"

__all__ = [
    "ALL_REGISTRIES", "BENCHMARKS", "DOWNSAMPLERS", "ENCODERS", "FUSIONS", "LLMS", "POSITIONS",
    "PROJECTORS", "SEGMENTERS", "ModelSpec", "Registry", "preset", "__version__", "build", "load",
]


def build(spec, **paths):  # noqa: ANN001, ANN201 - thin lazy wrappers, documented in og.model
    """Build a model and processor for a spec (see `og.model.factory.build`)."""
    from og.model.factory import build as _build

    return _build(spec, **paths)


def load(path, **kwargs):  # noqa: ANN001, ANN201
    """Load `(model, processor)` saved by `save_pretrained` (see `og.model.factory.load`)."""
    from og.model.factory import load as _load

    return _load(path, **kwargs)
