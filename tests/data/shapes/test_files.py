"""write_shapes: same bytes for a seed, LLaVA / test.jsonl formats, no test image in training, oracle store."""

import hashlib
import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from og.data.shapes.dataset import ShapesDataset, image_hash
from og.data.shapes.io import ORACLE_SPEC, oracle_masks, read_texts, write_oracle_store, write_shapes
from og.data.shapes.probes import PROBE_TYPES
from og.data.shapes.scene import ShapesConfig
from og.data.shapes.text import LEVELS, TEMPLATES


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    out = tmp_path_factory.mktemp("shapes")
    return write_shapes(out, n_train=40, n_test=12, seed=5)


def digest_tree(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_writes_the_same_bytes_and_another_seed_does_not(tmp_path, written):
    again = write_shapes(tmp_path / "again", n_train=40, n_test=12, seed=5)
    tree = digest_tree(written.out_dir)
    assert tree == digest_tree(again.out_dir) and len(tree) == 40 + 12 + 5
    other = digest_tree(write_shapes(tmp_path / "other", n_train=40, n_test=12, seed=6).out_dir)
    assert other["images/train/000000.png"] != tree["images/train/000000.png"]


def check_conversation(rec, root):
    assert set(rec) >= {"id", "image", "conversations"}
    assert (root / rec["image"]).is_file() and rec["image"].startswith("images/train/")
    turns = rec["conversations"]
    assert len(turns) >= 2 and len(turns) % 2 == 0
    assert [t["from"] for t in turns] == ["human", "gpt"] * (len(turns) // 2)
    assert turns[0]["value"].startswith("<image>\n")
    assert sum(t["value"].count("<image>") for t in turns) == 1
    assert all(isinstance(t["value"], str) and t["value"].strip() for t in turns)


def test_stage_files_are_llava_conversations(written):
    root = written.out_dir
    stage1 = json.loads(written.stage1.read_text())
    stage2 = json.loads(written.stage2.read_text())
    assert len(stage1) == 40 == len(stage2) and len({r["id"] for r in stage1}) == 40
    for rec in stage1 + stage2:
        check_conversation(rec, root)
    assert all(len(r["conversations"]) == 2 and r["conversations"][1]["value"].endswith(".") for r in stage1)
    assert all(len(r["conversations"]) == 8 for r in stage2)  # 4 questions per image by default
    meta = json.loads(written.meta.read_text())
    assert meta["identity"]["seed"] == 5 and meta["identity"]["config"]["image_size"] == 64
    assert meta["counts"] == written.counts


def test_test_jsonl_rows(written):
    rows = [json.loads(line) for line in written.test.read_text().splitlines()]
    assert len(rows) == 12 * len(PROBE_TYPES) and len({r["id"] for r in rows}) == len(rows)
    for r in rows:
        assert set(r) == {"id", "image", "type", "subtype", "question", "options", "answer"}
        assert r["type"] in PROBE_TYPES and r["image"].startswith("images/test/")
        assert (written.out_dir / r["image"]).is_file() and "<image>" not in r["question"]
        assert isinstance(r["answer"], int) and 0 <= r["answer"] < len(r["options"])
        assert all(isinstance(o, str) for o in r["options"]) and len(set(r["options"])) == len(r["options"])
    assert {k: v for k, v in written.counts.items() if k.startswith("probes_")} == {
        f"probes_{t}": 12 for t in PROBE_TYPES}


def test_the_eval_package_reads_the_test_split(written):
    from og.eval.benchmarks.shapes import Shapes

    items = Shapes().read(written.out_dir)
    assert len(items) == 12 * len(PROBE_TYPES)
    assert {it.fields["type"] for it in items} == set(PROBE_TYPES)


def png_hashes(folder: Path) -> set[bytes]:
    return {image_hash(np.asarray(Image.open(p).convert("RGB"))) for p in folder.glob("*.png")}


def test_no_test_image_appears_in_training(written):
    root = written.out_dir
    train_images = {r["image"] for name in ("stage1.json", "stage2.json")
                    for r in json.loads((root / name).read_text())}
    test_images = {json.loads(line)["image"] for line in written.test.read_text().splitlines()}
    assert train_images and test_images and not train_images & test_images
    assert not png_hashes(root / "images/train") & png_hashes(root / "images/test")  # not even as pixels


def test_a_test_scene_equal_to_a_train_image_is_redrawn():
    natural = ShapesDataset(3, seed=0, split="test")[1]
    excluded = ShapesDataset(3, seed=0, split="test", exclude=frozenset({image_hash(natural.scene.image)}))
    item = excluded[1]
    assert item.redraws == 1 and not np.array_equal(item.scene.image, natural.scene.image)
    first = ShapesDataset(3, split="test")[0].scene.image
    assert excluded[0].redraws == 0 and np.array_equal(excluded[0].scene.image, first)


def test_masks_match_the_written_pngs(written):
    keys = sorted(written.masks)
    assert keys == sorted(str(p.relative_to(written.out_dir)) for p in written.out_dir.rglob("*.png"))
    for key in keys:
        img = np.asarray(Image.open(written.out_dir / key).convert("RGB"))
        masks = written.masks[key]
        masks.check_size(*img.shape[:2], key)
        grey = (img[..., 0] == img[..., 1]) & (img[..., 1] == img[..., 2])
        assert np.array_equal(masks.data.any(0), ~grey) and masks.data.sum(0).max() == 1
        for m in masks.data:
            assert len(np.unique(img[m], axis=0)) == 1  # one object, one colour
        assert np.all(np.diff(masks.areas) <= 0)  # canonical order: equal scores, area descending


def test_masks_redrawn_from_scenes_jsonl_are_exact(written):
    again = oracle_masks(written.out_dir)
    assert sorted(again) == sorted(written.masks)
    assert all(again[k] == written.masks[k] for k in again)


def test_oracle_store_round_trip(tmp_path, written):
    from og.masks.store import MaskStore

    summary = write_oracle_store(written.out_dir, tmp_path / "oracle")
    assert summary["images"] == 52 and summary["failures"] == 0
    store = MaskStore(tmp_path / "oracle")
    assert store.spec == ORACLE_SPEC and len(store) == 52
    assert all(store.get(k) == written.masks[k] for k in written.masks)


def test_curriculum_puts_single_object_questions_first(tmp_path):
    files = write_shapes(tmp_path / "cur", n_train=15, n_test=2, seed=1, curriculum=True, questions_per_image=6,
                         config=ShapesConfig(image_size=48))
    stage2 = json.loads(files.stage2.read_text())
    levels = [r["level"] for r in stage2]
    assert levels == sorted(levels) and set(levels) == {1, 2}
    # each template as a pattern, the most literal first ("... of the center?" before "... of the {b}?")
    patterns = sorted(((re.sub(r"\\\{\w+\\\}", "(.+)", re.escape(t)), k) for k, t in TEMPLATES.items()),
                      key=lambda pk: -len(re.sub(r"\{\w+\}", "", TEMPLATES[pk[1]])))
    for rec in stage2:
        check_conversation(rec, files.out_dir)
        for q in rec["conversations"][::2]:
            text = q["value"].removeprefix("<image>\n")
            kinds = [k for pattern, k in patterns if re.fullmatch(pattern, text)]
            level = LEVELS[kinds[0]] if kinds else LEVELS["caption"]
            assert level == rec["level"], (text, rec["level"])
    assert np.asarray(Image.open(files.out_dir / "images/train/000000.png")).shape == (48, 48, 3)


def test_every_question_a_scene_has(tmp_path):
    from og.data.shapes.text import DEFAULT_KINDS, QUESTION_KINDS, every_question

    cfg = ShapesConfig(image_size=48, min_objects=1, max_objects=3)
    files = write_shapes(tmp_path / "all", n_train=12, n_test=2, seed=2, questions_per_image=None, config=cfg)
    stage2 = json.loads(files.stage2.read_text())
    items = list(ShapesDataset(12, seed=2, config=cfg, questions_per_image=None))
    assert [len(r["conversations"]) // 2 for r in stage2] == [len(it.qas) for it in items]
    for rec, it in zip(stage2, items, strict=True):
        check_conversation(rec, files.out_dir)
        assert len(it.qas) == len(every_question(it.scene, np.random.default_rng(0), DEFAULT_KINDS))  # other rng
        assert len(it.qas) >= 7  # 3 attributes, a yes and a no, the count and the caption at least
    assert json.loads(files.meta.read_text())["identity"]["questions_per_image"] is None
    assert not any("center" in t["value"] for r in stage2 for t in r["conversations"])  # opt-in kinds
    centre = write_shapes(tmp_path / "centre", n_train=12, n_test=2, seed=2, questions_per_image=None, config=cfg,
                          kinds=tuple(QUESTION_KINDS))
    rows = json.loads(centre.stage2.read_text())
    extra = [len(every_question(it.scene, np.random.default_rng(0))) - len(it.qas) for it in items]
    assert [len(r["conversations"]) // 2 for r in rows] == [len(it.qas) + k for it, k in zip(items, extra, strict=True)]
    assert sum(extra) > 0 and json.loads(centre.meta.read_text())["identity"]["kinds"] == list(QUESTION_KINDS)
    with pytest.raises(ValueError, match="questions_per_image=0; use a count >= 1, or None"):
        ShapesDataset(3, questions_per_image=0)


def test_read_texts_covers_every_file(written):
    texts = read_texts(written.out_dir)
    assert "Describe the image." in texts and any(t.startswith("<image>\n") for t in texts)
    rows = [json.loads(line) for line in written.test.read_text().splitlines()]
    assert all(o in texts for r in rows for o in r["options"])


def test_rewriting_a_folder(tmp_path):
    out = tmp_path / "d"
    first = digest_tree(write_shapes(out, n_train=6, n_test=2, seed=0).out_dir)
    assert digest_tree(write_shapes(out, n_train=6, n_test=2, seed=0).out_dir) == first  # same args: same files
    with pytest.raises(FileExistsError, match="holds another shapes dataset"):
        write_shapes(out, n_train=3, n_test=1, seed=1)
    files = write_shapes(out, n_train=3, n_test=1, seed=1, overwrite=True, return_masks=False)
    assert files.masks == {}
    pngs = sorted(str(p.relative_to(out)) for p in out.rglob("*.png"))
    assert pngs == ["images/test/000000.png", *(f"images/train/{i:06d}.png" for i in range(3))]  # nothing stale
    assert sorted(oracle_masks(out)) == pngs


def test_drill_records_add_every_centre_question_and_keep_the_mix(tmp_path, written):
    from og.data.shapes.text import CENTER_KINDS, center_side

    files = write_shapes(tmp_path, n_train=40, n_test=12, seed=5, drill_kinds=CENTER_KINDS)
    mix, drilled = json.loads(written.stage2.read_text()), json.loads(files.stage2.read_text())
    assert drilled[:len(mix)] == mix  # the records drawn from the kinds are untouched
    drills = drilled[len(mix):]
    assert drills and all(r["id"].endswith("-drill") for r in drills)
    scenes = {row["image"]: row for row in map(json.loads, files.scenes.read_text().splitlines())}
    width = Image.open(tmp_path / drills[0]["image"]).width
    asked = 0
    for record in drills:
        objects = scenes[record["image"]]["objects"]
        turns = record["conversations"]
        for question, answer in zip(turns[::2], turns[1::2], strict=True):
            if "left or right" not in question["value"]:
                continue
            name = re.search(r"Is the (.+) left or right", question["value"]).group(1)
            (obj,) = [o for o in objects if f"{o['color']} {o['shape']}" in name]
            side = center_side(obj["box"][0], obj["box"][2] + 1, width / 2)
            assert answer["value"] == ("left", "right")[side]
            asked += 1
    assert asked > 10
    assert json.loads(files.meta.read_text())["identity"]["drill_kinds"] == list(CENTER_KINDS)
    with pytest.raises(ValueError, match=r"unknown drill kinds \['centre'\]"):
        write_shapes(tmp_path / "bad", n_train=2, n_test=1, drill_kinds=("centre",))
