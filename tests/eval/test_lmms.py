"""The lmms-eval adapter: its entry point (always), and a local lmms-eval task run on a tiny og model
(only when lmms-eval is installed: `pip install 'og-llava[lmms]'`)."""

import importlib
import json
import sys
from importlib.metadata import entry_points
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]


def test_entry_point_declared_and_light():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    eps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["entry-points"]["lmms_eval.models"]
    module, _, attr = eps["og_llava"].partition(":")
    before = set(sys.modules)
    entry = importlib.import_module(module)
    assert callable(getattr(entry, attr)) and entry.CLASS_PATH == "og.eval.lmms.OGLlavaLMMS"
    assert not any(m.startswith("lmms_eval") for m in set(sys.modules) - before)  # listing imports nothing heavy


def test_manifest_resolves_to_the_adapter():
    pytest.importorskip("lmms_eval")
    from lmms_eval.api.model import lmms
    from lmms_eval.models.registry_v2 import ModelRegistryV2

    from og.eval.lmms_entry import manifests

    registry = ModelRegistryV2()
    for manifest in manifests():
        registry.register_manifest(manifest)
    cls = registry.get_model_class("og_llava")
    assert issubclass(cls, lmms) and cls.is_simple and cls.__name__ == "OGLlavaLMMS"
    assert registry.resolve("og-llava").model_id == "og_llava"
    if any(ep.name == "og_llava" for ep in entry_points(group="lmms_eval.models")):  # og installed with it
        found = ModelRegistryV2()
        found.load_entrypoint_manifests()
        assert found.get_model_class("og_llava") is cls


UTILS = '''
from PIL import Image

def doc_to_visual(doc):
    return [Image.open(doc["image_path"]).convert("RGB")]

def doc_to_text(doc, lmms_eval_specific_kwargs=None):
    return doc["question"]
'''

GEN_TASK = """task: og_local_gen
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
  cache_dir: {cache}
test_split: test
output_type: generate_until
doc_to_visual: !function utils.doc_to_visual
doc_to_text: !function utils.doc_to_text
doc_to_target: "answer"
generation_kwargs:
  max_new_tokens: 4
  until: ["\\n"]
metric_list:
  - metric: exact_match
    aggregation: mean
    higher_is_better: true
"""

@pytest.fixture
def local_tasks(tmp_path):
    rows = []
    for i in range(3):
        path = tmp_path / f"img{i}.png"
        Image.fromarray(np.random.default_rng(i).integers(0, 256, (20, 24, 3), dtype=np.uint8)).save(path)
        rows.append({"image_path": str(path), "question": "which colour is the shape ?", "answer": "red",
                     "options": ["red", "blue"], "label": i % 2})
    data = tmp_path / "data.json"
    data.write_text(json.dumps(rows))
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    (tasks / "utils.py").write_text(UTILS)
    (tasks / "og_local_gen.yaml").write_text(GEN_TASK.format(data=data, cache=tmp_path / "hf"))
    return tasks


def test_local_task_runs_with_masks(tmp_path, local_tasks, tiny_tokenizer):
    pytest.importorskip("lmms_eval")
    from lmms_eval import evaluator
    from lmms_eval.api.instance import Instance
    from lmms_eval.tasks import TaskManager

    import og
    from og.eval.lmms import OGLlavaLMMS
    from og.model.factory import save

    torch.manual_seed(0)
    model, processor = og.build("tiny-og", tokenizer=tiny_tokenizer())
    save(model, processor, tmp_path / "model")
    lm = OGLlavaLMMS(pretrained=str(tmp_path / "model"), batch_size=2, max_new_tokens=4)
    assert lm.masks is not None  # tiny-og's own segmenter, run on the fly
    results = evaluator.simple_evaluate(model=lm, tasks=["og_local_gen"],
                                        task_manager=TaskManager(include_path=str(local_tasks), include_defaults=False),
                                        limit=3)
    score = results["results"]["og_local_gen"]["exact_match,none"]
    assert 0.0 <= score <= 1.0

    # loglikelihood requests as lmms-eval builds them; (logprob, is_greedy) per request, in order.
    # (lmms-eval 0.7.3's evaluator turns these tuples into strings, which breaks its multiple_choice
    # tasks for every model, so they are checked here directly.)
    docs = json.loads((tmp_path / "data.json").read_text())
    lm.task_dict = {"t": {"test": docs}}

    def visual(doc):
        return [Image.open(doc["image_path"])]

    def instance(kind, a, n):
        return Instance(kind, a, idx=0, metadata={"task": a[4], "doc_id": a[3], "repeats": 1})

    args = [("which colour is the shape ?", option, visual, i, "t", "test") for i in range(3) for option in
            ("red", "blue")]
    out = lm.loglikelihood([instance("loglikelihood", a, n) for n, a in enumerate(args)])
    assert len(out) == 6 and all(isinstance(lp, float) and lp < 0 and isinstance(g, bool) for lp, g in out)
    one = OGLlavaLMMS(pretrained=str(tmp_path / "model"), batch_size=1)
    one.task_dict = lm.task_dict
    single = one.loglikelihood([instance("loglikelihood", a, n) for n, a in enumerate(args)])
    np.testing.assert_allclose([lp for lp, _ in out], [lp for lp, _ in single], atol=1e-4)
    request = instance("generate_until", ("which colour ?", {"until": ["\\n"]}, visual, 0, "t", "test"), 0)
    assert "\\n" not in lm.generate_until([request])[0]
    short, long = (instance("generate_until", ("which colour ?", {"max_new_tokens": k}, visual, 1, "t", "test"), 0)
                   for k in (1, 3))
    answers = lm.generate_until([long, short])  # different lengths: never batched together
    assert len(answers[1].split()) <= 1 and answers[0].startswith(answers[1])
