"""What `sam2` and `sam` share: the automatic-mask-generator knobs, weights, device, output.

Knobs (SegmenterSpec options) with the published OG-LLaVA setting as the defaults:
points_per_side 32, pred_iou_thresh 0.9, stability_score_thresh 0.95, box_nms_thresh 0.7,
min_mask_region_area 0, crop_n_layers 0 (no crops). `image_size` (default: the model's own,
1024) may only be changed with random weights; it exists so tests can run a small model quickly.

Runtime knobs trade speed only and are left out of the recorded spec id; `None` (the default)
means "auto": what `auto_runtime` gives for the device type, else the published / shipped
setting (`SHIPPED`). `points_per_batch` (prompts through the mask decoder at once; published
6, a GPU wants 64 or more), `bf16` (bfloat16 autocast, as SAM 2's own examples run it on
CUDA), `compile` ("none", "encoder": `torch.compile` of the image encoder, whose input shape
never changes, or "all": the mask decoder too). On CUDA sam2 defaults to 64 prompts, bf16, and
the encoder compiled when triton is installed (`bench/sam2_speed.py` measures each setting's
speed and its agreement with the shipped one).

Weights come from a local checkpoint (`.safetensors`, or a `.pt` read with
`torch.load(weights_only=True)`; a `{"model": state_dict}` wrapper is unwrapped). Without one,
random weights are built (seeded, so deterministic) and a RandomWeightsWarning says they are for
tests only. The model runs under `torch.inference_mode()`, with bfloat16 autocast when `bf16`.
"""

from __future__ import annotations

import importlib.util
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from og.masks.masks import Masks
from og.segmenters.base import Segmenter, canonical_spec, resolve_knobs
from og.spec import SegmenterSpec, SpecError, Value

AMG_KNOBS: dict[str, Value] = {
    "points_per_side": 32,
    "points_per_batch": None,
    "pred_iou_thresh": 0.9,
    "stability_score_thresh": 0.95,
    "box_nms_thresh": 0.7,
    "min_mask_region_area": 0,
    "crop_n_layers": 0,
    "image_size": None,
    "bf16": None,
    "compile": None,
}
GENERATOR_KNOBS = ("points_per_side", "points_per_batch", "pred_iou_thresh", "stability_score_thresh",
                   "box_nms_thresh", "min_mask_region_area", "crop_n_layers")
RUNTIME_KNOBS = ("points_per_batch", "bf16", "compile")  # speed only: left out of the recorded spec id
SHIPPED: dict[str, Value] = {"points_per_batch": 6, "bf16": False, "compile": "none"}  # published / no device
COMPILE = ("none", "encoder", "all")
RANDOM_SEED = 0


class RandomWeightsWarning(UserWarning):
    """A segmenter built without a checkpoint: its masks are meaningless (tests only)."""


def default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def load_state_dict(path: str | Path) -> dict[str, Any]:
    """A state dict from .safetensors or a torch pickle (weights_only); {"model": sd} unwrapped."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist; pass the local path of the weights")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    state = torch.load(path, map_location="cpu", weights_only=True)
    return state["model"] if isinstance(state, dict) and isinstance(state.get("model"), dict) else state


def load_weights(model: Any, path: str | Path, what: str) -> None:
    """Strictly load `path` into `model`; a mismatch names the checkpoint and the variant."""
    state = load_state_dict(path)
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ValueError(f"checkpoint {path} does not fit {what}: {len(missing)} missing keys (e.g. "
                         f"{missing[:2]}), {len(unexpected)} unexpected (e.g. {unexpected[:2]}); "
                         "pass the --variant that matches the checkpoint")


def weights_id(path: str | Path | None) -> str:
    """An id of the weights for the store's header: file name and size, or random(seed)."""
    if path is None:
        return f"random(seed={RANDOM_SEED})"
    return f"{Path(path).name}:{Path(path).stat().st_size}"


def runtime_settings(opts: dict[str, Value], device: str, auto: dict[str, dict[str, Value]]) -> dict[str, Value]:
    """The runtime knobs resolved for `device`: given values kept, `None` from `auto` for the
    device type (then from SHIPPED); `compile` falls back to "none" without triton on CUDA."""
    import torch

    kind = torch.device(device).type
    chosen = {**SHIPPED, **auto.get(kind, {})}
    if kind == "cuda" and importlib.util.find_spec("triton") is None:
        chosen["compile"] = "none"  # torch.compile's GPU backend needs triton
    return {k: chosen[k] if opts[k] is None else opts[k] for k in RUNTIME_KNOBS}


def check_knobs(name: str, opts: dict[str, Value], checkpoint: str | None) -> None:
    batch = opts["points_per_batch"]
    if opts["points_per_side"] < 1 or (batch is not None and (not isinstance(batch, int) or batch < 1)):
        raise SpecError(f"{name}: points_per_side={opts['points_per_side']}, points_per_batch="
                        f"{batch}; both must be integers >= 1")
    if opts["bf16"] not in (None, True, False):
        raise SpecError(f"{name}: bf16={opts['bf16']!r}; use true or false (default: true on CUDA)")
    if opts["compile"] not in (None, *COMPILE):
        raise SpecError(f"{name}: compile={opts['compile']!r}; use one of {', '.join(COMPILE)}")
    if opts["min_mask_region_area"] > 0 and importlib.util.find_spec("cv2") is None:
        raise SpecError(f"{name}: min_mask_region_area={opts['min_mask_region_area']} needs OpenCV; "
                        "pip install opencv-python-headless, or use min_mask_region_area=0")
    size = opts["image_size"]
    if size is not None:
        if not isinstance(size, int) or size < 64 or size % 64:
            raise SpecError(f"{name}: image_size={size!r}; use a multiple of 64 (the model default is 1024)")
        if checkpoint is not None and size != 1024:
            raise SpecError(f"{name}: image_size={size} with a checkpoint; real weights need the model's "
                            "own 1024, drop the option")


def records_to_masks(records: list[dict[str, Any]], height: int, width: int) -> Masks:
    """The generator's records (binary_mask mode) -> Masks scored by predicted IoU."""
    if not records:
        return Masks.empty(height, width)
    data = np.stack([np.asarray(r["segmentation"], dtype=bool) for r in records])  # (M, H, W)
    return Masks(data, np.asarray([r["predicted_iou"] for r in records], np.float32))


class AmgSegmenter(Segmenter):
    """Base of the SAM-family segmenters: subclasses give the variants and build model + generator."""

    variants: tuple[str, ...] = ()
    default_variant: str = ""
    auto_runtime: dict[str, dict[str, Value]] = {"cuda": {"points_per_batch": 64}}  # device type -> "auto"
    compile_targets: dict[str, tuple[str, ...]] = {"none": ()}  # compile knob -> model submodules

    def __init__(self, spec: SegmenterSpec, path: str | None = None, device: str | None = None) -> None:
        import torch

        self.spec = self.canonical(spec)
        variant = self.spec.variant
        if path is not None and not Path(path).is_file():
            raise FileNotFoundError(f"checkpoint {path} does not exist; pass the local path of the weights")
        self.opts = resolve_knobs(spec, AMG_KNOBS)
        check_knobs(spec.name, self.opts, path)
        self.variant, self.checkpoint = variant, path
        self.device = device or default_device()
        self.runtime = runtime_settings(self.opts, self.device, self.auto_runtime)
        if self.runtime["compile"] not in self.compile_targets:
            raise SpecError(f"{spec.name}: compile={self.runtime['compile']!r}; this segmenter offers "
                            f"{', '.join(self.compile_targets)}")
        self.weights = weights_id(path)
        if path is None:
            warnings.warn(f"{spec.name}:{variant} has no checkpoint: RANDOM weights, for tests only; "
                          "pass --checkpoint PATH (a local file) for real masks", RandomWeightsWarning, stacklevel=3)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(RANDOM_SEED)
            model = self.build_model(variant, self.opts["image_size"])
        if path is not None:
            load_weights(model, path, f"{spec.name}:{variant}")
        self.model = model.to(self.device).eval()
        for name in self.compile_targets[self.runtime["compile"]]:
            getattr(self.model, name).compile(dynamic=False)  # in place: parameter names unchanged
        knobs = {k: self.opts[k] for k in GENERATOR_KNOBS} | {"points_per_batch": self.runtime["points_per_batch"]}
        self.generator = self.build_generator(self.model, knobs)

    @classmethod
    def from_spec(cls, spec: SegmenterSpec, path: str | None = None, device: str | None = None,
                  **kwargs: Any) -> Segmenter:
        return cls(spec, path=path, device=device)

    @classmethod
    def canonical(cls, spec: SegmenterSpec) -> SegmenterSpec:
        variant = cls.resolve_variant(spec.variant or cls.default_variant)
        return canonical_spec(spec, AMG_KNOBS, variant, runtime=RUNTIME_KNOBS)

    @classmethod
    def resolve_variant(cls, variant: str) -> str:
        """The canonical variant name (an unknown one lists the valid names)."""
        if variant not in cls.variants:
            raise SpecError(f"{cls.__name__}: unknown variant {variant!r}; valid: {', '.join(cls.variants)}")
        return variant

    def build_model(self, variant: str, image_size: int | None) -> Any:
        raise NotImplementedError

    def build_generator(self, model: Any, knobs: dict[str, Value]) -> Any:
        raise NotImplementedError

    def segment(self, rgb: np.ndarray, key: str = "") -> Masks:
        import torch

        kind = torch.device(self.device).type
        with torch.inference_mode(), torch.autocast(kind, dtype=torch.bfloat16, enabled=bool(self.runtime["bf16"])):
            records = self.generator.generate(rgb)
        return records_to_masks(records, rgb.shape[0], rgb.shape[1])
