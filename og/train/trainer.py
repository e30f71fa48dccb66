"""`OGTrainer`: `transformers.Trainer` with only what OG-LLaVA training must do differently.

- optimizer parameter groups: the connector (projector, fusion, position) at `connector_lr`,
  the rest at the stage's lr, each split into decay / no-decay as the Trainer does. Under
  DeepSpeed with an optimizer in its config, the same groups are handed to DeepSpeed (they
  replace the flat parameter list of the Trainer's placeholder optimizer);
- saving: only the stage's trainable weights (`trainables.safetensors`) and the run info,
  gathered from ZeRO-3 partitions when needed; resuming loads them back;
- sampling: optional modality-and-length grouping (`group_by_modality_length`);
- a frozen encoder's features computed once per image (`cache_encoder_features`,
  `og.train.feature_cache`); the batch's `image_keys` are taken out either way;
- data events (masks missing, images substituted, samples truncated or skipped) are taken out
  of each batch (`og_events`) and counted in `data_events`; what the fusion did to each image
  (masks dropped, patches in no token, tokens) is counted from the batch's layout in `layout_counts`.
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any

import torch
from torch.utils.data import Sampler
from transformers import Trainer

from og.fusion.counts import LayoutCounts
from og.train.checkpoint import gather_trainables, load_trainables, save_trainables
from og.train.feature_cache import EncoderFeatureCache
from og.train.sampler import ModalityLengthSampler
from og.train.stages import CONNECTOR, Stage, group_of

log = logging.getLogger(__name__)
EXAMPLES_KEPT = 5


class OGTrainer(Trainer):
    """Trainer of one stage; `info` is written beside the weights (spec, stage, base, LoRA)."""

    def __init__(self, *args: Any, stage: Stage, info: dict[str, Any], processor: Any = None,
                 group_by_modality_length: bool = False, cache_encoder_features: bool = False,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.og_processor = processor  # saved beside the weights (not `processing_class`: no token alignment)
        self.stage = stage
        self.info = info
        self.group_by_modality_length = group_by_modality_length
        self.feature_cache = EncoderFeatureCache() if cache_encoder_features else None
        self.data_events: Counter[str] = Counter()
        self.event_examples: dict[str, list[str]] = {}
        self.layout_counts = LayoutCounts()

    # ---- optimizer ---------------------------------------------------------------------------
    def optimizer_groups(self, model: torch.nn.Module | None = None) -> list[dict[str, Any]]:
        """Trainable parameters in groups: (connector | rest) x (decay | no decay), empty ones left out."""
        model = model if model is not None else self.model
        decay = set(self.get_decay_parameter_names(model))
        connector_lr = self.stage.connector_lr if self.stage.connector_lr is not None else self.args.learning_rate
        buckets: dict[tuple[bool, bool], list[torch.nn.Parameter]] = {}
        for name, param in model.named_parameters():
            if param.requires_grad:
                buckets.setdefault((group_of(name) in CONNECTOR, name in decay), []).append(param)
        return [
            {"params": params, "lr": connector_lr if is_conn else self.args.learning_rate,
             "weight_decay": self.args.weight_decay if has_decay else 0.0}
            for (is_conn, has_decay), params in sorted(buckets.items())
        ]

    def create_optimizer(self, model: torch.nn.Module | None = None) -> torch.optim.Optimizer:
        from accelerate.utils import DummyOptim

        if isinstance(self.optimizer, DummyOptim):  # DeepSpeed builds it from its config: give it the groups
            self.optimizer.params = self.optimizer_groups(model)
            return self.optimizer
        if self.optimizer is None:
            cls, kwargs = self.get_optimizer_cls_and_kwargs(self.args, model if model is not None else self.model)
            self.optimizer = cls(self.optimizer_groups(model), **kwargs)
        return self.optimizer

    # ---- sampling ----------------------------------------------------------------------------
    def _get_train_sampler(self, train_dataset: Any = None) -> Sampler | None:
        dataset = train_dataset if train_dataset is not None else self.train_dataset
        if self.group_by_modality_length:
            if not hasattr(dataset, "modality_lengths"):
                raise ValueError("group_by_modality_length needs a dataset with `modality_lengths` (LlavaDataset)")
            return ModalityLengthSampler(dataset.modality_lengths, self.args.train_batch_size,
                                         self.args.world_size, seed=self.args.seed,
                                         accumulation=self.args.gradient_accumulation_steps)
        return super()._get_train_sampler(train_dataset)

    # ---- data events -------------------------------------------------------------------------
    def compute_loss(self, model: torch.nn.Module, inputs: dict[str, Any], return_outputs: bool = False,
                     num_items_in_batch: Any = None) -> Any:
        self.record_events(inputs.pop("og_events", ()))
        self.layout_counts.add(inputs.get("layout"))
        keys = inputs.pop("image_keys", None)
        if self.feature_cache is not None and keys is not None and inputs.get("pixel_values") is not None:
            bare = self.model.get_base_model() if hasattr(self.model, "get_base_model") else self.model  # PEFT
            inputs["vision_features"] = self.feature_cache(bare, inputs["pixel_values"], keys)
        return super().compute_loss(model, inputs, return_outputs=return_outputs,
                                    num_items_in_batch=num_items_in_batch)

    def record_events(self, events: Any) -> None:
        for kind, detail in events:
            if self.data_events[kind] == 0:
                log.warning("data: %s: %s (counted; totals at the end)", kind, detail)
            self.data_events[kind] += 1
            examples = self.event_examples.setdefault(kind, [])
            if len(examples) < EXAMPLES_KEPT:
                examples.append(detail)

    # ---- saving / resuming ---------------------------------------------------------------------
    @property
    def zero3(self) -> bool:
        return bool(self.is_deepspeed_enabled and self.accelerator.state.deepspeed_plugin.zero_stage == 3)

    def save_model(self, output_dir: str | None = None, _internal_call: bool = False) -> None:
        """Write the stage's trainable weights + run info (gathered on every rank, written by rank 0)."""
        output_dir = output_dir if output_dir is not None else self.args.output_dir
        tensors = gather_trainables(self.model, self.stage.saves, zero3=self.zero3)
        if self.args.should_save:
            save_trainables(output_dir, tensors, {**self.info, "global_step": self.state.global_step})
            if self.og_processor is not None:
                self.og_processor.save_pretrained(output_dir)

    def _load_from_checkpoint(self, resume_from_checkpoint: str, model: torch.nn.Module | None = None) -> None:
        names = load_trainables(model if model is not None else self.model, resume_from_checkpoint)
        log.info("resumed %d trainable tensors from %s", len(names), resume_from_checkpoint)
