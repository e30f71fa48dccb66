"""OGAnswerer: its summed log-likelihood against a naive token-by-token sum, greedy flags, prompts."""

import pytest
import torch

from og.eval.answer import query_for
from og.eval.base import Item
from og.eval.og_answerer import OGAnswerer
from og.eval.runner import load_image


def test_likelihood_matches_a_naive_unbatched_sum(tmp_path, image_writer, tiny_tokenizer):
    """The answerer's summed log-likelihood equals one computed by hand, token by token."""
    import og

    torch.manual_seed(0)
    model, processor = og.build("tiny-llava", tokenizer=tiny_tokenizer())
    answerer = OGAnswerer(model, processor)
    image = image_writer(tmp_path / "i.png")
    item = Item("x", str(image), "which colour is the shape ?", ["red", "green blue"], 0)
    query = query_for(item, "likelihood", load_image(item)[0], None)
    scores = answerer.loglikelihood([query], [item.options])[0]
    context = answerer.context(query)
    tok = processor.tokenizer
    for option, score in zip(item.options, scores, strict=True):
        batch = processor([context + option], [query.image])
        n = len(tok(context + option, add_special_tokens=False)["input_ids"]) - len(
            tok(context, add_special_tokens=False)["input_ids"])
        with torch.no_grad():
            logp = torch.log_softmax(model(**batch).logits[0].float(), -1)  # (L, V)
        ids = batch["input_ids"][0]
        naive = sum(float(logp[t - 1, ids[t]]) for t in range(len(ids) - n, len(ids)))
        assert score == pytest.approx(naive, abs=1e-4)


def test_greedy_flag_context_and_description(tmp_path, image_writer, tiny_tokenizer):
    import og

    torch.manual_seed(1)
    model, processor = og.build("tiny-llava", tokenizer=tiny_tokenizer())
    answerer = OGAnswerer(model, processor, path="somewhere")
    item = Item("x", str(image_writer(tmp_path / "i.png")), "which colour is the shape ?", ["red", "blue"], 0)
    query = query_for(item, "generate", load_image(item)[0], None)
    assert answerer.context(query).count(processor.image_token) == 1 and not answerer.needs_masks
    greedy = answerer.generate([query], max_new_tokens=2)[0]
    assert greedy
    (lp_greedy, is_greedy), (lp_other, is_other) = answerer.score_continuations(
        [query], [[greedy, "red red red"]])[0]
    assert is_greedy and lp_greedy > lp_other
    assert answerer.describe() == {"name": "og", "spec": model.config.model_spec.id, "path": "somewhere",
                                   "chat_template": processor.chat_template}
    with pytest.raises(ValueError, match="adds no token"):
        answerer.loglikelihood([query], [[""]])
