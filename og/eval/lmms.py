"""lmms-eval adapter: run any lmms-eval task on an og model (with its masks).

    pip install 'og-llava[lmms]'
    lmms-eval --model og_llava --model_args pretrained=DIR,masks=STORE --tasks mmvp --batch_size 4

lmms-eval 0.7 finds the model through the `lmms_eval.models` entry point (`og.eval.lmms_entry`),
which yields a `ModelManifest` naming `OGLlavaLMMS`. Model args: `pretrained` (a saved og model),
`masks` (a MaskStore) or `segmenter` (a segmenter spec id; default: the model's own segmenter),
`mask_key` (the document field naming the image in the store; default: the first of image_path,
filename, image_file, file_name that the document has, else task/split/doc_id), `device`,
`dtype`, `batch_size`, `max_new_tokens`. Generation is greedy whatever the task asks
(deterministic); `until` strings cut the answer. One image per question (og models take one).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from lmms_eval.api.instance import Instance
from lmms_eval.api.model import lmms
from PIL import Image

from og.eval.answer import Query
from og.eval.mask_source import crop_masks
from og.eval.og_answerer import OGAnswerer
from og.eval.suite import mask_source_for

KEY_FIELDS = ("image_path", "filename", "image_file", "file_name")


def _chunks(seq: list[Any], n: int) -> Iterator[list[Any]]:
    for start in range(0, len(seq), n):
        yield seq[start:start + n]


def _cut(text: str, until: list[str]) -> str:
    for stop in until:
        if stop and stop in text:
            text = text[:text.index(stop)]
    return text


class OGLlavaLMMS(lmms):
    """An og model (OG-LLaVA or any variant) as an lmms-eval `simple` model."""

    is_simple = True

    def __init__(self, pretrained: str, masks: str | None = None, segmenter: str | None = None,
                 mask_key: str = "", device: str | None = None, dtype: str | None = None, batch_size: int | str = 1,
                 max_new_tokens: int | str = 64, **kwargs: Any) -> None:
        super().__init__()
        unknown = {k: v for k, v in kwargs.items() if v is not None}
        if unknown:
            raise ValueError(f"og_llava got unknown model args {sorted(unknown)}; valid: pretrained, masks, "
                             "segmenter, mask_key, device, dtype, batch_size, max_new_tokens")
        self.pretrained = str(pretrained)
        self.answerer = OGAnswerer.load(pretrained, device=device, dtype=dtype)
        self.masks = mask_source_for(self.answerer, store=masks, segmenter=segmenter, device=device)
        self.mask_key = mask_key
        self.batch_size_per_gpu = int(batch_size)
        self.max_new_tokens = int(max_new_tokens)

    @property
    def batch_size(self) -> int:
        return self.batch_size_per_gpu

    def _doc(self, task: str, split: str, doc_id: int) -> dict[str, Any]:
        return self.task_dict[task][split][doc_id]

    def _key(self, doc: dict[str, Any], task: str, split: str, doc_id: int) -> str:
        fields = (self.mask_key,) if self.mask_key else KEY_FIELDS
        for name in fields:
            if isinstance(doc.get(name), (str, int)) and not isinstance(doc.get(name), bool):
                return str(doc[name])
        if self.mask_key:
            raise KeyError(f"document {doc_id} of {task}/{split} has no field {self.mask_key!r} (mask_key)")
        return f"{task}/{split}/{doc_id}"

    def _query(self, context: str, doc_to_visual: Any, doc_id: int, task: str, split: str) -> Query:
        doc = self._doc(task, split, doc_id)
        visuals = [v for v in (doc_to_visual(doc) if doc_to_visual else []) if v is not None]
        if len(visuals) > 1:
            raise ValueError(f"{task} doc {doc_id} has {len(visuals)} images; og models take one image per question")
        image = visuals[0].convert("RGB") if visuals and isinstance(visuals[0], Image.Image) else None
        if visuals and image is None:
            raise ValueError(f"{task} doc {doc_id}: visual of type {type(visuals[0]).__name__}; og models take images")
        key = self._key(doc, task, split, doc_id)
        masks = None
        if image is not None and self.masks is not None:
            masks = crop_masks(self.masks.get(key, image), None, (image.height, image.width), key)
        return Query(key=key, prompt=context, image=image, masks=masks)

    def generate_until(self, requests: list[Instance]) -> list[str]:
        """Greedy answers, batched among requests that ask for the same number of new tokens."""
        groups: dict[int, list[int]] = {}
        for n, r in enumerate(requests):
            groups.setdefault(int((r.args[1] or {}).get("max_new_tokens", self.max_new_tokens)), []).append(n)
        out: list[str] = [""] * len(requests)
        for max_new, members in groups.items():
            for chunk in _chunks(members, self.batch_size):
                args = [requests[n].args for n in chunk]
                queries = [self._query(a[0], a[2], a[3], a[4], a[5]) for a in args]
                texts = self.answerer.generate(queries, max_new_tokens=max_new)
                for n, a, text in zip(chunk, args, texts, strict=True):
                    until = (a[1] or {}).get("until") or []
                    out[n] = _cut(text, [until] if isinstance(until, str) else list(until))
        return out

    def loglikelihood(self, requests: list[Instance]) -> list[tuple[float, bool]]:
        out: list[tuple[float, bool]] = []
        for chunk in _chunks([r.args for r in requests], self.batch_size):
            queries, conts = [], []
            for ctx, target, visual, doc_id, task, split in chunk:
                queries.append(self._query(ctx, visual, doc_id, task, split))
                conts.append([target if isinstance(target, str) else target(self._doc(task, split, doc_id))])
            out.extend(row[0] for row in self.answerer.score_continuations(queries, conts))
        return out

    def generate_until_multi_round(self, requests: list[Instance]) -> list[str]:
        raise NotImplementedError("og_llava answers single-round questions; multi-round generation is not supported")
