"""ARO (Yuksekgonul et al.): VG-Relation, VG-Attribution, COCO-Order, Flickr30k-Order.

Local copy in one folder (any subset may be absent unless named in `subsets`):
- `visual_genome_relation.json` / `visual_genome_attribution.json` as the ARO authors publish them:
  image_path, bbox_x, bbox_y, bbox_w, bbox_h, true_caption, false_caption and relation_name /
  attributes [a, b]; the image is cropped to the box (its masks too).
- COCO-Order / Flickr30k-Order: built from the Karpathy test split as ARO's code does, or read
  from a prebuilt table or the parquet copy with embedded images (see `aro_order`).
Images are looked up under --images, then `<data>/images`, then `<data>`.

The captions are posed as options in an order drawn per item from `seed` (a generator seeded by
seed and item id), so the right caption is not always in the same place; the seed is reported.
VG-Relation is the macro accuracy over relations excluding the symmetric ones the ARO authors
list; VG-Attribution the macro accuracy over the attribute pairs with at least 25 items (the
official rule; `vg_attribution/pairs_kept` of `/pairs`, the macro over every pair is
`vg_attribution/unfiltered_macro`); the Order sets plain accuracy.
"""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path
from typing import Any

from og.eval.base import Benchmark, Item, correct_flags, group_accuracy, mean, percent, resolve_image
from og.eval.benchmarks.aro_order import CAPTIONS, KARPATHY, order_rows, order_source
from og.eval.tables import find_table, read_records
from og.eval.word_order import Tagger, spacy_tagger
from og.registry import BENCHMARKS

QUESTION = "Which caption best describes the image?"
CONTEXT = "Describe the image in one sentence."
BOX = ("bbox_x", "bbox_y", "bbox_w", "bbox_h")
VG_CAPTIONS = ("true_caption", "false_caption")
SUBSETS: dict[str, tuple[str, tuple[str, ...]]] = {  # name -> (file stem, required columns)
    "vg_relation": ("visual_genome_relation", ("image_path", *BOX, *VG_CAPTIONS, "relation_name")),
    "vg_attribution": ("visual_genome_attribution", ("image_path", *BOX, *VG_CAPTIONS, "attributes")),
    "coco_order": ("coco_order", ("image", *CAPTIONS)),
    "flickr30k_order": ("flickr30k_order", ("image", *CAPTIONS)),
}
TABLES = "(.csv/.json/.jsonl/.parquet)"
SOURCE_NAMES = {  # what a missing subset's error asks for
    "vg_relation": f"visual_genome_relation {TABLES}", "vg_attribution": f"visual_genome_attribution {TABLES}",
    **{s: f"{s} {TABLES}, {s}/*.parquet or {KARPATHY[s]}" for s in KARPATHY},
}

# The relations the ARO authors exclude from VG-Relation's macro accuracy (their `symmetric` list
# in main_aro.py): swapping subject and object leaves these captions plausible.
SYMMETRIC_RELATIONS = frozenset("""
adjusting|attached to|between|bigger than|biting|boarding|brushing|chewing|cleaning|climbing|close to|coming from|
coming out of|contain|crossing|dragging|draped over|drinking|drinking from|driving|driving down|driving on|
eating from|eating in|enclosing|exiting|facing|filled with|floating in|floating on|flying|flying above|flying in|
flying over|flying through|full of|going down|going into|going through|grazing in|growing in|growing on|guiding|
hanging from|hanging in|hanging off|hanging over|higher than|holding onto|hugging|in between|jumping off|jumping on|
jumping over|kept in|larger than|leading|leaning over|leaving|licking|longer than|looking in|looking into|
looking out|looking over|looking through|lying next to|lying on top of|making|mixed with|mounted on|moving|
on the back of|on the edge of|on the front of|on the other side of|opening|painted on|parked at|parked beside|
parked by|parked in|parked in front of|parked near|parked next to|perched on|petting|piled on|playing|playing in|
playing on|playing with|pouring|reaching for|reading|reflected on|riding on|running in|running on|running through|
seen through|sitting behind|sitting beside|sitting by|sitting in front of|sitting near|sitting next to|
sitting under|skiing down|skiing on|sleeping in|sleeping on|smiling at|sniffing|splashing|sprinkled on|stacked on|
standing against|standing around|standing behind|standing beside|standing in front of|standing near|
standing next to|staring at|stuck in|surrounding|swimming in|swinging|talking to|topped with|touching|
traveling down|traveling on|tying|typing on|underneath|wading in|waiting for|walking across|walking by|
walking down|walking next to|walking through|working in|working on|worn on|wrapped around|wrapped in|by|of|near|
next to|with|beside|on the side of|around""".replace("\n", "").split("|"))


# ARO's own VG-Attribution score (`evaluate_scores` in their dataset_zoo/aro_datasets.py) skips the
# attribute pairs with fewer than this many items.
ATTRIBUTION_MIN_ITEMS = 25


def shuffled(captions: list[str], seed: int, item_id: str) -> tuple[list[str], int]:
    """The captions (right one first) in an order drawn from (seed, item id); the right one's index."""
    order = list(range(len(captions)))
    random.Random(f"{seed}/{item_id}").shuffle(order)
    return [captions[i] for i in order], order.index(0)


@BENCHMARKS.register("aro")
class ARO(Benchmark):
    """ARO: VG-Relation and VG-Attribution (macro accuracy), COCO- and Flickr30k-Order."""

    name = "aro"
    headline = tuple(SUBSETS)
    OPTIONS = {"seed": 0, "subsets": ""}

    def __init__(self, tagger: Tagger | None = None) -> None:
        super().__init__()
        self.tagger = tagger  # builds the Order sets from the Karpathy split; default: spaCy's, loaded when needed

    def _read(self, data_path: Path, images_dir: Path | None, opts: dict[str, Any]) -> list[Item]:
        if not data_path.is_dir():
            raise NotADirectoryError(f"aro: --data must be the folder holding the ARO files; got {data_path}")
        named = [s.strip() for s in str(opts["subsets"]).split(",") if s.strip()]
        unknown = [s for s in named if s not in SUBSETS]
        if unknown:
            raise ValueError(f"aro: unknown subset {unknown[0]!r}; use some of {', '.join(SUBSETS)}")
        sources = {s: self._source(data_path, s) for s in (named or SUBSETS)}
        absent = [s for s, f in sources.items() if f is None]
        if named and absent or len(absent) == len(sources):
            wanted = ", ".join(SOURCE_NAMES[s] for s in absent)
            raise FileNotFoundError(f"aro: no {wanted} in {data_path}")
        seed = int(opts["seed"])
        self.notes = {"seed": seed, "subsets_absent": absent,
                      "sources": {s: f"{src[0]}: {', '.join(p.name for p in src[1])}" for s, src in sources.items()
                                  if src is not None}}
        roots = [images_dir] if images_dir else [data_path / "images", data_path]
        items = []
        for subset, source in sources.items():
            if source is None:
                continue
            kind, files = source
            self.files.extend(files)
            if kind == "vg":
                rows = (self._vg(subset, row) for row in read_records(files[0], SUBSETS[subset][1]))
            else:
                rows = ((image, captions, None, None) for image, captions in
                        order_rows(kind, files, subset, roots[0], seed, self._tagger))
            for n, (image, captions, crop, group) in enumerate(rows):
                options, answer = shuffled([str(c).strip() for c in captions], seed, f"{subset}/{n}")
                items.append(Item(
                    id=f"{subset}/{n}", image=resolve_image(image, roots), question=QUESTION, context=CONTEXT,
                    options=options, answer=answer, image_key=image, crop=crop,
                    fields={"subset": subset, "group": group},
                ))
        return items

    @staticmethod
    def _source(data_path: Path, subset: str) -> tuple[str, list[Path]] | None:
        if subset.startswith("vg_"):
            table = find_table(data_path, SUBSETS[subset][0])
            return None if table is None else ("vg", [table])
        return order_source(data_path, subset)

    @staticmethod
    def _vg(subset: str, row: dict[str, Any]) -> tuple[str, list[str], tuple[int, ...], str]:
        """(image, [true, false caption], crop box, relation or attribute pair) of a VG row."""
        crop = tuple(int(round(float(row[k]))) for k in BOX)
        attrs = row["attributes"] if subset == "vg_attribution" else None
        group = row["relation_name"] if attrs is None else f"{attrs[0]}_{attrs[1]}"
        return str(row["image_path"]), [row["true_caption"], row["false_caption"]], crop, group

    def _tagger(self) -> Tagger:
        return self.tagger if self.tagger is not None else spacy_tagger()

    def score(self, items: list[Item], predictions: dict[str, int | None]) -> dict[str, Any]:
        right = correct_flags(items, predictions)
        scores: dict[str, Any] = {}
        for subset in SUBSETS:
            part = [it for it in items if it.fields["subset"] == subset]
            if not part:
                continue
            micro = percent(right[it.id] for it in part)
            if subset == "vg_relation":
                kept = [it for it in part if it.fields["group"] not in SYMMETRIC_RELATIONS]
                groups = group_accuracy(kept, right, lambda it: it.fields["group"])
                scores[subset] = mean(groups.values())
                scores[f"{subset}/relations"] = len(groups)
            elif subset == "vg_attribution":
                groups = group_accuracy(part, right, lambda it: it.fields["group"])
                sizes = Counter(it.fields["group"] for it in part)
                kept = [g for g in groups if sizes[g] >= ATTRIBUTION_MIN_ITEMS]
                scores[subset] = mean(groups[g] for g in kept)
                scores[f"{subset}/pairs_kept"] = len(kept)
                scores[f"{subset}/pairs"] = len(groups)
                scores[f"{subset}/unfiltered_macro"] = mean(groups.values())
            else:
                scores[subset] = micro
            scores[f"{subset}/micro"] = micro
        return scores
