"""`shapes`: a seeded synthetic compositional dataset (images, oracle masks, captions, questions).

In memory::

    ds = ShapesDataset(1000, seed=0, split="train")
    item = ds[3]            # ShapesItem: .image (PIL), .masks (Masks), .caption, .qas, .probes
    scene = generate_scene(np.random.default_rng(0))

On disk (`write_shapes(out_dir, n_train, n_test, seed)`)::

    images/train/000000.png ...  images/test/000000.png ...
    stage1.json   LLaVA format, one caption conversation per train image
    stage2.json   LLaVA format, multi-turn short-answer questions per train image
    test.jsonl    {"id", "image", "type", "subtype", "question", "options", "answer"} per probe
    scenes.jsonl  every image's objects (shape, colour, size, centre, half-extent, visible box)
    meta.json     seed, config, counts

Item i of a split is drawn from its own generators, seeded by (seed, split, i), so any item can
be made alone and the splits never share a stream. Test images that equal a train image (by
pixels) are redrawn; `meta.json` counts them. Masks come back keyed by image path (relative
to out_dir), in the segmenter's canonical order (see `og.data.shapes.scene`).
Probe questions carry no "<image>" token: the evaluator puts the image before the question, as
the training conversations do ("<image>\\n" + question).
"""

from __future__ import annotations

from og.data.shapes.dataset import SPLITS, ShapesDataset, ShapesItem, image_hash
from og.data.shapes.io import ORACLE_SPEC, ShapesFiles, oracle_masks, read_texts, write_oracle_store, write_shapes
from og.data.shapes.probes import PROBE_TYPES, Probe, parse_caption, probes
from og.data.shapes.scene import COLORS, SHAPES, SIZES, Scene, ShapeObject, ShapesConfig, generate_scene
from og.data.shapes.text import QA, QUESTION_KINDS, caption, questions, vocabulary_text

__all__ = [
    "COLORS", "ORACLE_SPEC", "PROBE_TYPES", "QA", "QUESTION_KINDS", "SHAPES", "SIZES", "SPLITS", "Probe", "Scene",
    "ShapeObject", "ShapesConfig", "ShapesDataset", "ShapesFiles", "ShapesItem", "caption", "generate_scene",
    "image_hash", "oracle_masks", "parse_caption", "probes", "questions", "read_texts", "vocabulary_text",
    "write_oracle_store", "write_shapes",
]
