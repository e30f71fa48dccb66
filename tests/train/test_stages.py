"""The stages table, freezing by parameter group, and the modality-length sampler."""

from __future__ import annotations

import logging

import pytest
import torch

from og.train.sampler import ModalityLengthSampler, modality_grouped_indices
from og.train.stages import STAGES, LoraSettings, apply_stage, get_stage, group_of, parameter_groups


def test_table_holds_the_published_recipe():
    pre, fine = STAGES["pretrain"], STAGES["finetune"]
    assert pre.train == ("projector", "fusion", "position") and pre.lr == 1e-3 and pre.lora is None
    assert pre.template == "plain" and pre.saves == pre.train
    assert set(fine.train) == {"projector", "fusion", "position", "lora"}
    assert (fine.lr, fine.connector_lr) == (1e-4, None)  # the connector follows the lr
    assert fine.lora == LoraSettings(r=128, alpha=256, dropout=0.05, target="all-linear")
    for stage in STAGES.values():
        assert stage.defaults["num_train_epochs"] == 1 and stage.defaults["activation_checkpointing"] is True
    with pytest.raises(ValueError, match="unknown training stage 'pretrian'.*pretrain, finetune"):
        get_stage("pretrian")


def test_flags_swap_lora_for_the_whole_llm_and_add_the_encoder():
    full = STAGES["finetune"].with_flags(train_llm=True, train_encoder=True)
    assert "lora" not in full.train and {"llm", "encoder"} <= set(full.train) and full.lora is None
    assert set(full.saves) == set(full.train)
    small = STAGES["finetune"].with_flags(lora=LoraSettings(r=8, alpha=16))
    assert small.lora.r == 8 and "lora" in small.train
    with pytest.raises(ValueError, match="stage 'pretrain' trains no LoRA"):
        STAGES["pretrain"].with_flags(lora=LoraSettings(r=8))


def test_groups_follow_the_model_submodules_and_peft_names():
    assert group_of("projector.linear_1.weight") == "projector"
    assert group_of("base_model.model.fusion.bom") == "fusion"
    assert group_of("base_model.model.language_model.model.layers.0.mlp.up_proj.lora_A.default.weight") == "lora"
    assert group_of("language_model.lm_head.weight") == "llm" and group_of("encoder.model.x") == "encoder"


def test_apply_stage_freezes_all_but_the_stage_groups_and_logs_them(tiny, caplog):
    model, _ = tiny()
    groups = parameter_groups(model)
    with caplog.at_level(logging.INFO, logger="og.train"):
        counts = apply_stage(model, STAGES["encoder"])
    assert set(counts) == {"encoder", "projector", "fusion"}
    assert counts["encoder"] == sum(p.numel() for _, p in groups["encoder"])
    for group, params in groups.items():
        assert all(p.requires_grad == (group in counts) for _, p in params), group
    message = caplog.records[-1].getMessage()
    assert message.startswith("stage encoder: trainable projector 8.3K, fusion 64, encoder 83.7K")
    assert message.endswith("frozen llm 78.5K")
    with pytest.raises(ValueError, match="trains LoRA but the language model has no LoRA"):
        apply_stage(model, STAGES["finetune"])


def test_modality_sampler_groups_images_and_text_and_sorts_by_length():
    lengths = [5, -3, 9, 2, -7, 4, 8, -1, 6, 3, -2, 7]  # 8 image samples, 4 text-only
    sampler = ModalityLengthSampler(lengths, batch_size=2, world_size=2, seed=0)
    order = list(sampler)
    assert sorted(order) == list(range(len(lengths)))
    for start in range(0, 12, 4):
        chunk = order[start: start + 4]
        assert len({lengths[i] > 0 for i in chunk}) == 1  # one modality per mega-batch
        assert [abs(lengths[i]) for i in chunk] == sorted((abs(lengths[i]) for i in chunk), reverse=True)
    assert order == list(ModalityLengthSampler(lengths, 2, 2, seed=0))
    sampler.set_epoch(1)
    assert list(sampler) != order
    gen = torch.Generator().manual_seed(0)
    odd = modality_grouped_indices([1, 2, 3, -1, -2], megabatch=2, generator=gen)
    assert sorted(odd) == [0, 1, 2, 3, 4]


def test_the_modality_sampler_groups_the_samples_of_one_update():
    lengths = [5, 9, 2, 4, 8, 1, 6, 3, 7, 10, 11, 12]
    by_update = ModalityLengthSampler(lengths, batch_size=2, world_size=1, seed=0, accumulation=3)
    assert by_update.megabatch == 6  # LLaVA: world size x accumulation steps x batch
    order = list(by_update)
    assert order == list(ModalityLengthSampler(lengths, batch_size=2, world_size=3, seed=0))
    for start in (0, 6):
        update = [lengths[i] for i in order[start: start + 6]]
        assert update == sorted(update, reverse=True)
