"""`import og` registers the config, model and processor with transformers' Auto classes, and
does so without importing transformers (or torch) itself."""

from __future__ import annotations

import subprocess
import sys

import torch
from safetensors.torch import save_file

from og.model.factory import save

LOAD = """
import sys
import og
assert "transformers" not in sys.modules
import torch
from safetensors.torch import load_file
from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForImageTextToText, AutoProcessor
d = sys.argv[1]
model = AutoModelForImageTextToText.from_pretrained(d).eval()
assert type(model).__name__ == "OGLlavaForConditionalGeneration", type(model)
assert type(AutoModelForCausalLM.from_pretrained(d)) is type(model)
assert type(AutoConfig.from_pretrained(d)).__name__ == "OGLlavaConfig"
processor = AutoProcessor.from_pretrained(d)
assert type(processor).__name__ == "OGLlavaProcessor", type(processor)
ref = load_file(d + "/reference.safetensors")
batch = {k: ref[k] for k in ("input_ids", "attention_mask", "pixel_values")}
with torch.no_grad():
    logits = model(**batch).logits
assert torch.equal(logits, ref["logits"]), (logits - ref["logits"]).abs().max()
print("loaded")
"""


def test_import_og_imports_neither_transformers_nor_torch():
    code = "import sys, og; print(sorted({'torch', 'transformers'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "[]"


def test_auto_classes_load_an_og_checkpoint_in_a_fresh_process(make_model, samples, tmp_path):
    model, processor = make_model("patches", "learned2d")
    batch = processor([processor.prompt("<image>\nwhat is in the image ?")], [samples[0][0]])
    with torch.no_grad():
        logits = model(**batch).logits
    save(model, processor, tmp_path)
    save_file({"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"],
               "pixel_values": batch["pixel_values"], "logits": logits}, str(tmp_path / "reference.safetensors"))
    out = subprocess.run([sys.executable, "-c", LOAD, str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().endswith("loaded")
