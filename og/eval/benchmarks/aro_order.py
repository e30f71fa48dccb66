"""The items of ARO's COCO-Order and Flickr30k-Order, from whichever local copy there is.

Looked for in `--data`, in this order:
1. `coco_order.<csv|json|jsonl|parquet>` / `flickr30k_order.<...>`: a prebuilt table with an image
   and the five captions `correct_caption, hard_text_1 .. hard_text_4`;
2. a folder `coco_order/` / `flickr30k_order/` of parquet files: the common copy, whose `images`
   column embeds the image bytes (a column renamed `image` works the same);
3. the Karpathy test split the official code builds the sets from, `coco_karpathy_test.json` /
   `flickr30k_test.json` (records `image`, `caption` list): every caption becomes an item whose
   four perturbations are made as ARO's code makes them (`og.eval.word_order`, seeded).
Embedded images are written once into the images folder (`--images`, else `<data>/images`) as
`<subset>/<file name>` (the embedded name, else a hash of the bytes, so an image repeated for each
of its captions is written once); that path is the item's image and its mask key, so
`og masks build --images <that folder>` builds the masks the run looks up.
"""

from __future__ import annotations

import hashlib
import io
import json
import random
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from PIL import Image

from og.eval.base import BenchmarkFormatError
from og.eval.tables import find_table, iter_records
from og.eval.word_order import Tagger, order_options

CAPTIONS = ("correct_caption", "hard_text_1", "hard_text_2", "hard_text_3", "hard_text_4")
KARPATHY = {"coco_order": "coco_karpathy_test.json", "flickr30k_order": "flickr30k_test.json"}
ALIASES = {"images": "image"}


def order_source(data: Path, subset: str) -> tuple[str, list[Path]] | None:
    """(kind, files) of the first local copy of `subset` in `data`: table, parquet folder or karpathy."""
    table = find_table(data, subset)
    if table is not None:
        return "table", [table]
    shards = sorted((data / subset).rglob("*.parquet")) if (data / subset).is_dir() else []
    if shards:
        return "parquet", shards
    karpathy = data / KARPATHY[subset]
    return ("karpathy", [karpathy]) if karpathy.is_file() else None


def order_rows(kind: str, files: list[Path], subset: str, image_dir: Path, seed: int,
               tagger: Callable[[], Tagger]) -> Iterator[tuple[str, list[str]]]:
    """(image name under the images folder, [right caption, four shuffles]) per item, in file order."""
    if kind == "karpathy":
        yield from _built(files[0], subset, seed, tagger())
        return
    for path in files:
        for row in iter_records(path, ("image", *CAPTIONS), ALIASES):
            yield _image_name(row["image"], subset, image_dir, path), [str(row[c]).strip() for c in CAPTIONS]


def _built(path: Path, subset: str, seed: int, tagger: Tagger) -> Iterator[tuple[str, list[str]]]:
    """ARO's own construction: every caption of every test image, then its four perturbations."""
    try:
        annotations = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise BenchmarkFormatError(f"{path}: not valid JSON ({err})") from None
    pairs = []
    for n, ann in enumerate(annotations if isinstance(annotations, list) else [None]):
        if not isinstance(ann, dict) or "image" not in ann or "caption" not in ann:
            raise BenchmarkFormatError(f"{path} record {n}: expected the Karpathy split's records with 'image' and "
                                       "'caption' (a list of captions)")
        captions = ann["caption"] if isinstance(ann["caption"], list) else [ann["caption"]]
        pairs += [(str(ann["image"]), str(c)) for c in captions]
    tagged = tagger([caption for _, caption in pairs])
    for n, ((image, caption), tags) in enumerate(zip(pairs, tagged, strict=True)):
        yield image, order_options(caption, tags, random.Random(f"{seed}/{subset}/{n}/shuffles"))


def _image_name(value: Any, subset: str, image_dir: Path, source: Path) -> str:
    """The image a row names; embedded bytes are written once under `image_dir` and named by their path."""
    if isinstance(value, dict) and not value.get("bytes") and value.get("path"):
        return str(value["path"])
    data = value.get("bytes") if isinstance(value, dict) else value
    if not isinstance(data, (bytes, bytearray)):
        return str(value)
    given = value.get("path") if isinstance(value, dict) else None
    if given:
        name = Path(given).name
    else:
        with Image.open(io.BytesIO(data)) as img:
            suffix = {"JPEG": ".jpg"}.get(img.format, f".{(img.format or 'png').lower()}")
        name = hashlib.sha1(data).hexdigest()[:20] + suffix
    target = image_dir / subset / name
    if not target.is_file():
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            partial = target.with_suffix(target.suffix + ".part")
            partial.write_bytes(bytes(data))
            partial.replace(target)
        except OSError as err:
            raise OSError(f"aro: cannot write the images embedded in {source} to {target.parent} ({err}); "
                          "pass --images DIR with a writable folder") from None
    return f"{subset}/{name}"
