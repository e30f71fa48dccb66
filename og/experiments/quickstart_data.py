"""The quickstart's data and encoder (`og quickstart`, `og frontier`): the shapes data folder, its oracle
mask store, train probes, the text-only warm-up records and the tokenizer, and the stand-in for CLIP
pretrained once per folder (`og.experiments.clip_pretrain`) and probed (`og.eval.probe`). Every step is
idempotent: a folder that has it is read back.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from og.eval.suite import BenchRun
from og.experiments.ablate import AblationData
from og.experiments.quickstart import BASE, SCENES, Size


def pretraining_set(out: Path, data_dir: Path, size: Size, seed: int) -> tuple[Path, Path]:
    """(images folder, mask store) the encoder pretrains on: the training images and their oracle
    store, or `size.pretrain_images` generated training images of their own (written once)."""
    from og.data.shapes import write_oracle_store, write_shapes
    from og.masks.store import MaskStore

    if size.pretrain_images <= size.n_train:
        return data_dir, out / "masks" / "oracle"
    folder = out / "pretrain"
    store = folder / "masks"
    if not (store.exists() and len(MaskStore(store)) == size.pretrain_images):
        files = write_shapes(folder, size.pretrain_images, 0, seed=seed, config=SCENES, progress=True, overwrite=True)
        write_oracle_store(folder, store, masks=files.masks)
    return folder, store


@contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """torch's intra-op thread count set to `threads` inside (None: left as it is), restored after."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads or before)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def prepare_encoder(out: Path, data_dir: Path, size: Size, on_step: Any = None, seed: int = 0,
                    threads: int | None = None) -> dict[str, Any]:
    """Pretrain the stand-in for CLIP once per data folder (resumable) and probe it, on `threads` torch
    threads (None: the caller's; unlike the tiny LLM's runs, its batch-64 steps gain from a second core);
    the report. No test image is pretrained on (their hashes are excluded)."""
    from og.data.shapes.dataset import image_hash
    from og.eval.probe import probe_encoder
    from og.experiments.clip_pretrain import pretrain_encoder
    from og.registry import ENCODERS

    encoder_dir = out / "encoder"
    images, masks, test = data_dir, None, frozenset()
    if not (encoder_dir / "pretrain.json").is_file():  # a finished pretraining is read back: nothing to gather
        images, masks = pretraining_set(out, data_dir, size, seed)
        test = frozenset(image_hash(np.asarray(Image.open(p).convert("RGB")))
                         for p in sorted((data_dir / "images" / "test").glob("*.png")))
    with torch_threads(threads):
        report = pretrain_encoder(images, encoder_dir, size.encoder, on_step=on_step, masks=masks, exclude=test)
    probe_path = encoder_dir / "probe.json"
    if not probe_path.is_file():
        encoder = ENCODERS.get(BASE.encoder.name).from_spec(BASE.encoder, path=str(encoder_dir))
        probe = probe_encoder(encoder, data_dir, images=size.probe_images)  # box: what the features hold
        probe["token"] = probe_encoder(encoder, data_dir, images=size.probe_images, pool="token")  # one token
        probe_path.write_text(json.dumps(probe))
    return {"path": str(encoder_dir), "steps": report["steps"], "loss_first": report["loss_first"],
            "loss_last": report["loss_last"], "seconds": report["seconds"], "images": report.get("images"),
            "excluded": report.get("excluded", 0), "pooling": size.encoder.pooling, "region": size.encoder.region,
            "phrase_loss": size.encoder.phrase_loss, "word_loss": size.encoder.word_loss,
            "position_loss": size.encoder.position_loss, "threads": report.get("threads"),
            "probe": json.loads(probe_path.read_text())}


def prepare_data(out: Path, size: Size, seed: int = 0, on_encoder_step: Any = None,
                 encoder_threads: int | None = None) -> AblationData:
    """Write the shapes data, its oracle store, SLIC store, train probes and tokenizer, and pretrain the
    encoder on `encoder_threads` (idempotent); `AblationData.encoder` holds the encoder's report."""
    from og.data.shapes import ShapesDataset, probes, read_texts, write_oracle_store, write_shapes
    from og.data.tokenizer import train_tokenizer
    from og.masks.store import MaskStore

    data_dir = out / "data"
    files = write_shapes(data_dir, size.n_train, size.n_test, seed=seed, config=SCENES, progress=True, overwrite=True,
                         questions_per_image=size.questions_per_image, drill_kinds=size.drill_kinds)
    oracle_dir = out / "masks" / "oracle"
    if not (oracle_dir.exists() and len(MaskStore(oracle_dir)) == size.n_train + size.n_test):
        write_oracle_store(data_dir, oracle_dir, masks=files.masks)
    probe_rows = [  # the test split's probe types, asked about train images (train accuracy)
        {"id": f"{it.id}-{p.type}", "image": it.image_path, "type": p.type, "subtype": p.subtype,
         "question": p.question, "options": list(p.options), "answer": p.answer}
        for i, it in enumerate(ShapesDataset(size.n_train_probe, seed=seed, split="train", config=SCENES))
        for p in probes(it.scene, np.random.default_rng((seed, 7, i)))
    ]
    (data_dir / "train_probes.jsonl").write_text("".join(json.dumps(r) + "\n" for r in probe_rows))
    text_only = [  # the training conversations without images: the LM warm-up of the random tiny LLM
        {"id": f"text-{r['id']}", "conversations": [{**t, "value": t["value"].replace("<image>\n", "")}
                                                    for t in r["conversations"]]}
        for name in (files.stage1, files.stage2) for r in json.loads(name.read_text())]
    (data_dir / "text_only.json").write_text(json.dumps(text_only))
    tokenizer = train_tokenizer(read_texts(data_dir))
    tokenizer.save_pretrained(out / "tokenizer")
    encoder = prepare_encoder(out, data_dir, size, on_step=on_encoder_step, seed=seed, threads=encoder_threads)
    return AblationData(
        stage1=[str(files.stage1)], stage2=[str(files.stage2)], image_root=data_dir,
        benches={"test": BenchRun("shapes", data_dir), "train": BenchRun("shapes", data_dir,
                                                                         options={"split": "train_probes"})},
        stores={"oracle": oracle_dir}, tokenizer=tokenizer, text_only=[str(data_dir / "text_only.json")],
        encoder_path=encoder["path"], encoder=encoder,
    )
