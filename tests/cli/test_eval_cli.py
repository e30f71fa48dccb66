"""`og eval` on a saved tiny model (two benchmarks, both modes) and `og eval compare` on its results."""

import csv
import json

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from cli.main import app

runner = CliRunner()


def _tokenizer():
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = "is the door open which colour shape red blue yes no answer with option's letter user assistant".split()
    vocab = {w: i for i, w in enumerate(dict.fromkeys(["<unk>", "<s>", "</s>", "<pad>", *words, *"abAB.:?()'"]))}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()])
    template = ("{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
                "{% if add_generation_prompt %}assistant: {% endif %}")
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", bos_token="<s>", eos_token="</s>",
                                   pad_token="<pad>", chat_template=template)


def _image(path, seed):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (20, 24, 3), dtype=np.uint8)).save(path)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    import og
    from og.model.factory import save

    root = tmp_path_factory.mktemp("evalcli")
    torch.manual_seed(0)
    model, processor = og.build("tiny-llava", tokenizer=_tokenizer())
    save(model, processor, root / "model")
    shapes = root / "shapes"
    rows = [{"id": f"s{i}", "image": f"{i}.png", "type": "attribute", "question": "which colour is the shape ?",
             "options": ["red", "blue"], "answer": i % 2} for i in range(3)]
    shapes.mkdir()
    (shapes / "test.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    for i in range(2):  # s2's image is missing
        _image(shapes / f"{i}.png", i)
    mmvp = root / "mmvp"
    mmvp.mkdir()
    with open(mmvp / "Questions.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["Index", "Question", "Options", "Correct Answer"])
        writer.writerows([[i, "is the door open ?", "(a) yes (b) no", "(a)" if i % 2 else "(b)"] for i in range(1, 5)])
    for i in range(1, 5):
        _image(mmvp / "MMVP Images" / f"{i}.jpg", i)
    return root


def test_eval_writes_results_and_prints_table(workspace):
    out = workspace / "run_gen"
    args = ["eval", "--model", str(workspace / "model"), "--bench", "shapes,mmvp", "--data", str(workspace / "shapes"),
            "--data", str(workspace / "mmvp"), "--batch-size", "2", "--fix-known-errors", "--out", str(out)]
    result = runner.invoke(app, args, terminal_width=200)
    assert result.exit_code == 0, result.output
    record = json.loads((out / "results.json").read_text())
    assert record["mode"] == "generate" and record["model"]["spec"].endswith("tiny-llama")
    assert set(record["benchmarks"]) == {"shapes", "mmvp"}
    shapes, mmvp = record["benchmarks"]["shapes"], record["benchmarks"]["mmvp"]
    assert shapes["missing_images"] == 1 and shapes["missing_image_ids"] == ["s2"]
    assert mmvp["options"]["fix_known_errors"] is True and mmvp["n_items"] == 4
    assert len(next(iter(mmvp["data_files"].values()))) == 64
    assert all("output" in p for p in mmvp["predictions"])
    assert "pair_accuracy" in result.output and "1 of 3 images missing" in result.output
    # 1 of 3 shapes items without an image (> 5 %): the first line of the summary, and in results.json
    warning = "WARNING shapes: 1 of 3 items (33.3 %) have no image and are scored as wrong"
    assert record["warnings"][0].startswith(warning) and mmvp["missing_images_warning"] is None
    lines = result.output.splitlines()
    first = next(n for n, line in enumerate(lines) if line.startswith(warning))
    assert first < min(n for n, line in enumerate(lines) if "tiny-llama" in line or "pair_accuracy" in line)


def test_eval_likelihood_limit_and_compare(workspace):
    out = workspace / "run_lik"
    args = ["eval", "--model", str(workspace / "model"), "--bench", "mmvp", "--data", str(workspace / "mmvp"),
            "--mode", "likelihood", "--limit", "2", "--out", str(out)]
    result = runner.invoke(app, args, terminal_width=200)
    assert result.exit_code == 0, result.output
    record = json.loads((out / "results.json").read_text())
    assert record["mode"] == "likelihood" and record["benchmarks"]["mmvp"]["n_items"] == 2
    assert all(len(p["scores"]) == 2 for p in record["benchmarks"]["mmvp"]["predictions"])
    # compare with itself changed: flip one prediction so there is a disagreement to draw
    other = json.loads(json.dumps(record))
    pred = other["benchmarks"]["mmvp"]["predictions"][0]
    pred["prediction"] = 1 - pred["answer"] if pred["prediction"] == pred["answer"] else pred["answer"]
    pred["correct"] = pred["prediction"] == pred["answer"]
    (workspace / "other").mkdir(exist_ok=True)
    (workspace / "other" / "results.json").write_text(json.dumps(other))
    chart, grid = workspace / "chart.png", workspace / "grid.png"
    result = runner.invoke(app, ["eval", "compare", str(out / "results.json"), str(workspace / "other"),
                                 "--out", str(chart), "--examples", str(grid)], terminal_width=200)
    assert result.exit_code == 0, result.output
    for png in (chart, grid):
        with Image.open(png) as img:
            assert img.format == "PNG"


def test_eval_errors(workspace):
    result = runner.invoke(app, ["eval", "--bench", "mmvp"])
    assert result.exit_code == 2 and "missing --model, --data, --out" in result.output
    args = ["eval", "--model", str(workspace / "model"), "--bench", "mmvp,shapes", "--data", str(workspace / "mmvp"),
            "--data", str(workspace / "shapes"), "--data", str(workspace), "--out", str(workspace / "x")]
    result = runner.invoke(app, args)
    assert "3 --data paths for 2 benchmarks" in str(result.exception)
    args = ["eval", "--model", str(workspace / "model"), "--bench", "mmvp", "--data", str(workspace / "mmvp"),
            "-o", "mmvp.seed=3", "--out", str(workspace / "x")]
    result = runner.invoke(app, args)
    assert "benchmark 'mmvp' has no option 'seed'" in str(result.exception)
