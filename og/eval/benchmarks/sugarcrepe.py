"""SugarCrepe: seven JSON files of COCO val2017 captions with hard negatives.

Local copy: `add_att.json`, `add_obj.json`, `replace_att.json`, `replace_obj.json`,
`replace_rel.json`, `swap_att.json`, `swap_obj.json`, each {id: {filename, caption,
negative_caption}}; images looked up under --images, then `<data>/val2017`, `<data>/images`, `<data>`.
Each pair is asked twice, the positive caption first (A) and again second (B), since a generative
model's position bias is large. Reported per file and order, per file averaged over both orders,
and `mean` = the mean over files of those averages.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from og.eval.base import Benchmark, Item, correct_flags, mean, named_files, percent, resolve_image
from og.eval.tables import read_records
from og.registry import BENCHMARKS

FILES = ("add_att", "add_obj", "replace_att", "replace_obj", "replace_rel", "swap_att", "swap_obj")
ORDERS = ("pos_first", "pos_second")
QUESTION = "Which caption best describes the image?"
CONTEXT = "Describe the image in one sentence."


@BENCHMARKS.register("sugarcrepe")
class SugarCrepe(Benchmark):
    """SugarCrepe (7 files), each pair asked with the positive first and second; both orders averaged."""

    name = "sugarcrepe"
    headline = ("mean", *ORDERS)
    OPTIONS = {"files": ",".join(FILES)}

    def _read(self, data_path: Path, images_dir: Path | None, opts: dict[str, Any]) -> list[Item]:
        if data_path.is_file():
            files = {data_path.stem: data_path}
        else:
            files = named_files("sugarcrepe", data_path, str(opts["files"]), FILES, lambda f: f"{f}.json", "files")
        root = data_path if data_path.is_dir() else data_path.parent
        roots = [images_dir] if images_dir else [root / "val2017", root / "images", root]
        items = []
        for name, path in files.items():
            self.files.append(path)
            for row in read_records(path, ("id", "filename", "caption", "negative_caption")):
                image = str(row["filename"])
                pos, neg = str(row["caption"]).strip(), str(row["negative_caption"]).strip()
                for order, options in zip(ORDERS, ([pos, neg], [neg, pos]), strict=True):
                    items.append(Item(
                        id=f"{name}/{row['id']}/{order}", image=resolve_image(image, roots), question=QUESTION,
                        context=CONTEXT, options=options, answer=options.index(pos), image_key=image,
                        fields={"file": name, "order": order},
                    ))
        return items

    def score(self, items: list[Item], predictions: dict[str, int | None]) -> dict[str, Any]:
        right = correct_flags(items, predictions)
        scores: dict[str, Any] = {}
        averages = []
        for name in dict.fromkeys(it.fields["file"] for it in items):
            mine = [it for it in items if it.fields["file"] == name]
            per_order = {o: percent(right[it.id] for it in mine if it.fields["order"] == o) for o in ORDERS}
            scores[name] = mean(per_order.values())
            scores.update({f"{name}/{order}": v for order, v in per_order.items()})
            averages.append(scores[name])
        for order in ORDERS:
            scores[order] = percent(right[it.id] for it in items if it.fields["order"] == order)
        return {"mean": mean(averages), **scores}
