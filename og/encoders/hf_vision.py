"""Vision towers from `transformers` (CLIP, SigLIP): the shared loader and forward.

A family subclass names its model and config classes, its variant table and its default
normalisation. Weights load from a local directory (a vision-only checkpoint or a full
dual-encoder one: the text tower's keys are ignored, a missing vision key is an error). `forward`
runs only the blocks up to the spec's layer (the blocks after it are hidden for the call and put back:
the module and its checkpoint keep them all); `forward_with_cls_attention` runs every block.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import torch
from transformers import PretrainedConfig, PreTrainedModel
from transformers.utils import logging as hf_logging

try:
    from transformers.utils.output_capturing import maybe_install_capturing_hooks as install_hooks
except ImportError:  # transformers 4 collects hidden states in the blocks' loop
    install_hooks = None

from og.encoders.base import VisionEncoder, cls_attention, select_layer
from og.encoders.layers import check_layer
from og.spec import EncoderSpec, SpecError

log = logging.getLogger(__name__)


@contextlib.contextmanager
def quiet_transformers() -> Iterator[None]:
    """Silence transformers' load report (we check missing keys ourselves)."""
    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)


def read_normalisation(path: str | Path) -> tuple[list[float], list[float]] | None:
    """image_mean / image_std from a checkpoint's `preprocessor_config.json`, if it has one."""
    file = Path(path) / "preprocessor_config.json"
    if not file.is_file():
        return None
    data = json.loads(file.read_text())
    if "image_mean" in data and "image_std" in data:
        return list(data["image_mean"]), list(data["image_std"])
    return None


class HFVisionEncoder(VisionEncoder):
    """A `transformers` vision model: patch features from `hidden_states[spec.layer]`."""

    model_class: ClassVar[type[PreTrainedModel]]
    config_class: ClassVar[type[PretrainedConfig]]
    variants: ClassVar[dict[str, dict[str, Any]]]
    default_mean: ClassVar[tuple[float, float, float]]
    default_std: ClassVar[tuple[float, float, float]]

    def __init__(self, spec: EncoderSpec, model: PreTrainedModel, mean: Any, std: Any) -> None:
        super().__init__()
        self.spec = spec
        self.model = model
        cfg = model.config
        check_layer(spec, cfg.num_hidden_layers, allow_embeddings=True)
        size, patch = cfg.image_size, cfg.patch_size
        self.image_size = (size, size)
        self.grid = (size // patch, size // patch)
        self.dim = cfg.hidden_size
        self.mean = tuple(float(v) for v in mean)
        self.std = tuple(float(v) for v in std)
        embeddings = getattr(model, "vision_model", model).embeddings
        self.n_prefix = embeddings.num_positions - self.num_patches  # CLIP: 1 (CLS), SigLIP: 0

    @classmethod
    def from_spec(cls, spec: EncoderSpec, path: str | None = None,
                  config: dict[str, Any] | None = None) -> HFVisionEncoder:
        if path is not None:
            return cls._from_path(spec, path)
        if config is not None:
            vision_config = cls.config_class.from_dict(config["vision_config"])
            return cls(spec, cls.model_class(vision_config), config["mean"], config["std"])
        if spec.variant not in cls.variants:
            raise SpecError(
                f"{spec.name} has no variant {spec.variant!r}; named variants: {', '.join(cls.variants)} "
                "(or give a local checkpoint path)"
            )
        vision_config = cls.config_class(**cls.variants[spec.variant])
        return cls(spec, cls.model_class(vision_config), cls.default_mean, cls.default_std)

    @classmethod
    def _from_path(cls, spec: EncoderSpec, path: str) -> HFVisionEncoder:
        if not Path(path, "config.json").is_file():
            raise FileNotFoundError(
                f"{spec.name} encoder path {path!r} has no config.json; give a local transformers "
                f"checkpoint directory ({cls.model_class.__name__} or its dual-encoder model)"
            )
        with quiet_transformers():  # its report lists the text tower's keys; we check below
            model, info = cls.model_class.from_pretrained(path, output_loading_info=True,
                                                          ignore_mismatched_sizes=True)
        missing, mismatched = sorted(info["missing_keys"]), sorted(info["mismatched_keys"])
        if missing or mismatched:
            example = (missing or [m[0] for m in mismatched])[0]
            raise ValueError(
                f"{spec.name} checkpoint {path!r} lacks {len(missing)} vision weights and has {len(mismatched)} "
                f"of another shape (e.g. {example!r}); is it a {cls.model_class.__name__} checkpoint?"
            )
        if info["unexpected_keys"]:
            log.info("%s: ignored %d non-vision weights in %s", spec.name, len(info["unexpected_keys"]), path)
        mean, std = read_normalisation(path) or (cls.default_mean, cls.default_std)
        return cls(spec, model, mean, std)

    def config_dict(self) -> dict[str, Any]:
        return {"vision_config": self.model.config.to_dict(), "mean": list(self.mean), "std": list(self.std)}

    @contextlib.contextmanager
    def _blocks_read(self) -> Iterator[int]:
        """Run only the blocks up to the one the spec reads (LLaVA's -2 leaves the last unused: it would
        cost a block's forward per image and train nothing); yields the read layer's index in the
        shortened `hidden_states`. The blocks are restored after, so the saved model keeps them all."""
        if install_hooks is not None:  # transformers >= 5 records hidden states by hooks on the blocks present
            install_hooks(self.model)  # at the first forward: install them on every block before hiding some
        encoder = getattr(self.model, "vision_model", self.model).encoder
        blocks = encoder.layers
        keep = self.spec.layer % (len(blocks) + 1)  # hidden_states index of the layer read = blocks run
        encoder.layers = blocks[: max(keep, 1)]  # the hooks of transformers 5 see the input at the first block
        try:
            yield keep
        finally:
            encoder.layers = blocks

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:  # (B, 3, H, W) -> (B, h*w, D)
        pixels = pixels.to(self.model.dtype)  # (B, 3, H, W)
        with self._blocks_read() as read:
            out = self.model(pixel_values=pixels, output_hidden_states=True)
        return select_layer(out.hidden_states, read, self.n_prefix)  # (B, h*w, D)

    def forward_with_cls_attention(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Features (B, h*w, D) and the last block's CLS attention to each patch (B, h*w), in one pass."""
        if self.n_prefix < 1:
            raise ValueError(f"encoder {self.spec.id!r} has no CLS token (it pools without one); fusion "
                             "prune(by=cls) needs one: use a CLIP encoder, or prune(by=norm|random)")
        pixels = pixels.to(self.model.dtype)  # (B, 3, H, W)
        out = self.model(pixel_values=pixels, output_hidden_states=True)
        last = getattr(self.model, "vision_model", self.model).encoder.layers[-1]
        x = last.layer_norm1(out.hidden_states[-2])  # (B, L, D) the last block's attention input
        attn = last.self_attn
        weights = cls_attention(attn.q_proj, attn.k_proj, attn.num_heads, attn.scale, x, self.n_prefix)  # (B, h*w)
        return select_layer(out.hidden_states, self.spec.layer, self.n_prefix), weights
