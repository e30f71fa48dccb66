"""run_stage on a tiny random model and a toy LLaVA dataset: learning, freezing, resume, export."""

from __future__ import annotations

import dataclasses
import logging

import pytest
import torch
from safetensors.torch import load_file
from transformers import TrainerCallback

from og.train import STAGES, LoraSettings, export_model, export_run, run_stage
from og.train.checkpoint import TRAINABLES
from og.train.stages import canonical

SMALL_LORA = LoraSettings(r=4, alpha=8, dropout=0.05)


def snapshot(model):
    """Parameters by name in the bare model (PEFT's wrapper prefix and `.base_layer` removed)."""
    return {canonical(n).replace(".base_layer", ""): p.detach().clone() for n, p in model.named_parameters()}


def changed(before, model):
    """Names that moved; LoRA tensors (absent before) count as moved when B is no longer zero."""
    after = snapshot(model)
    moved = {n for n in before if not torch.equal(before[n], after[n])}
    return moved | {n for n, p in after.items() if "lora_B" in n and p.abs().sum() > 0}


class Kill(Exception):
    """Stands for the process being killed right after a checkpoint was written."""


class KillAfterSave(TrainerCallback):
    def __init__(self, step: int) -> None:
        self.step = step

    def on_save(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            raise Kill(f"killed after checkpoint-{self.step}")


class Capture(TrainerCallback):
    """Records the optimizer's groups and the projector weights when training starts."""

    def on_train_begin(self, args, state, control, model=None, optimizer=None, **kwargs):
        self.groups = [(g["lr"], {id(p) for p in g["params"]}) for g in optimizer.param_groups]
        self.projector = {n: p.detach().clone() for n, p in model.named_parameters() if ".projector." in f".{n}"}


def test_pretrain_learns_and_changes_only_the_connector(tiny, fast, toy, store, tmp_path, caplog):
    model, processor = tiny()
    before = snapshot(model)
    with caplog.at_level(logging.INFO, logger="og.train"):
        result = run_stage("pretrain", model, processor, [str(toy.captions)], tmp_path / "s1",
                           image_root=toy.image_root, mask_store=store, max_steps=12, per_device_train_batch_size=8,
                           **fast)
    assert len(result.losses) == 12
    assert result.losses[-1] < result.losses[0] - 0.1, result.losses  # the same 8 samples every step
    trained = {n for n, p in model.named_parameters() if p.requires_grad}
    assert {n.split(".")[0] for n in trained} == {"projector", "fusion"}  # no position table in this spec
    assert changed(before, model) == trained  # every trainable tensor moved, nothing else did
    saved = load_file(str(tmp_path / "s1" / TRAINABLES))
    assert set(saved) == trained and all(torch.equal(saved[n], dict(model.named_parameters())[n]) for n in saved)
    line = next(r.getMessage() for r in caplog.records if "stage pretrain: trainable" in r.getMessage())
    assert "projector 8.3K" in line and "fusion 64" in line and "frozen encoder" in line and "llm" in line


def test_finetune_from_stage1_trains_connector_and_lora_with_their_lrs(tiny, fast, toy, store, tmp_path):
    model, processor = tiny()
    run_stage("pretrain", model, processor, [str(toy.captions)], tmp_path / "s1", image_root=toy.image_root,
              mask_store=store, max_steps=2, per_device_train_batch_size=4, **fast)
    stage1 = load_file(str(tmp_path / "s1" / TRAINABLES))
    fresh, processor = tiny(seed=1)  # other random connector: stage 1's must be loaded over it
    before = snapshot(fresh)
    capture = Capture()
    stage = dataclasses.replace(STAGES["finetune"], connector_lr=3e-4)
    result = run_stage(stage, fresh, processor, [str(toy.instruct)], tmp_path / "s2", image_root=toy.image_root,
                       mask_store=store, from_stage1=tmp_path / "s1", lora=SMALL_LORA, max_steps=10,
                       per_device_train_batch_size=10, learning_rate=1e-3, callbacks=[capture],
                       group_by_modality_length=True, **fast)
    assert result.losses[-1] < result.losses[0], result.losses
    for name, weight in capture.projector.items():
        assert torch.equal(weight, stage1[canonical(name)])
    params = dict(result.model.named_parameters())
    lrs = {canonical(n): lr for lr, ids in capture.groups for n, p in params.items() if id(p) in ids}
    assert {lrs[n] for n in lrs if n.startswith(("projector", "fusion"))} == {3e-4}
    assert {lrs[n] for n in lrs if "lora_" in n} == {1e-3}
    moved = changed(before, result.model)
    assert moved and all(n.startswith(("projector", "fusion")) or "lora_B" in n for n in moved)
    assert any("lora_B" in n for n in moved) and any(n.startswith("projector") for n in moved)
    assert result.trainable["lora"] > 0 and "llm" not in result.trainable and "encoder" not in result.trainable


@pytest.mark.parametrize(("recipe", "connector"), [("og", 1e-3), ("llava-1.5", 2e-5)])
def test_an_overridden_lr_moves_the_connector_unless_the_recipe_names_its_own(tiny, fast, toy, store, tmp_path,
                                                                               recipe, connector):
    model, processor = tiny()
    capture = Capture()
    result = run_stage("finetune", model, processor, [str(toy.instruct)], tmp_path / "s2", image_root=toy.image_root,
                       mask_store=store, lora=SMALL_LORA, max_steps=1, per_device_train_batch_size=2,
                       learning_rate=1e-3, recipe=recipe, callbacks=[capture], group_by_modality_length=False, **fast)
    params = dict(result.model.named_parameters())
    lrs = {canonical(n): lr for lr, ids in capture.groups for n, p in params.items() if id(p) in ids}
    assert {lrs[n] for n in lrs if n.startswith(("projector", "fusion"))} == {connector}
    assert {lrs[n] for n in lrs if "lora_" in n} == {1e-3}


def test_kill_and_resume_equals_an_uninterrupted_run(tiny, fast, toy, store, tmp_path):
    common = dict(image_root=toy.image_root, mask_store=store, lora=SMALL_LORA, max_steps=6,
                  per_device_train_batch_size=3, learning_rate=1e-3, **{**fast, "save_strategy": "steps"},
                  save_steps=3)
    model, processor = tiny()
    straight = run_stage("finetune", model, processor, [str(toy.instruct)], tmp_path / "a", **common)
    model, processor = tiny()
    with pytest.raises(Kill):
        run_stage("finetune", model, processor, [str(toy.instruct)], tmp_path / "b", callbacks=[KillAfterSave(3)],
                  **common)
    assert (tmp_path / "b" / "checkpoint-3" / TRAINABLES).is_file()
    model, processor = tiny()  # a new process: the same random base, nothing trained
    resumed = run_stage("finetune", model, processor, [str(toy.instruct)], tmp_path / "b", resume=True,
                        base={"dir": str(tmp_path / "b" / "base")}, **common)
    assert resumed.global_step == 6
    assert len(resumed.losses) == 6  # the first three come from the checkpoint's trainer state
    assert resumed.losses[3:] == pytest.approx(straight.losses[3:], abs=1e-5), (resumed.losses, straight.losses)
    a, b = load_file(str(tmp_path / "a" / TRAINABLES)), load_file(str(tmp_path / "b" / TRAINABLES))
    assert set(a) == set(b) and any("lora_B" in n for n in a)
    for name in a:
        torch.testing.assert_close(b[name], a[name], rtol=0, atol=1e-6)


def test_export_merges_lora_and_loads_for_generation(tiny, fast, toy, store, tmp_path):
    import og

    model, processor = tiny()
    result = run_stage("finetune", model, processor, [str(toy.instruct)], tmp_path / "run",
                       image_root=toy.image_root, mask_store=store, lora=SMALL_LORA, max_steps=3,
                       per_device_train_batch_size=4, learning_rate=1e-2, **fast)
    from PIL import Image

    image = Image.open(toy.image_root / "images/0000.png")
    prompt = processor.prompt("<image>\nwhat color is the leftmost box ?")
    batch = processor([prompt], [image], masks=[store.get("images/0000.png")])
    result.model.eval()
    with torch.no_grad():
        trained = result.model(**batch).logits
    export_model(result.model, processor, tmp_path / "merged")
    export_run(tmp_path / "run", tmp_path / "from_disk")
    for out in ("merged", "from_disk"):
        loaded, loaded_proc = og.load(tmp_path / out)
        assert not any("lora_" in n for n, _ in loaded.named_parameters())
        batch = loaded_proc([prompt], [image], masks=[store.get("images/0000.png")])
        with torch.no_grad():
            torch.testing.assert_close(loaded(**batch).logits, trained, rtol=1e-4, atol=1e-4)
        generated = loaded.generate(**batch, max_new_tokens=4, do_sample=False)
        length = batch["input_ids"].shape[1]
        assert length < generated.shape[1] <= length + 4
        assert torch.equal(generated[:, :length], batch["input_ids"])
