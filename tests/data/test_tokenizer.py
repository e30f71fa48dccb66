"""Word-level tokenizer: no <unk> on the generated corpus, round trips, chat template, save / load."""

import pytest
from transformers import AutoTokenizer, PreTrainedTokenizerFast

from og.data.shapes.dataset import ShapesDataset
from og.data.shapes.io import read_texts, write_shapes
from og.data.shapes.scene import ShapesConfig
from og.data.shapes.text import vocabulary_text
from og.data.tokenizer import ROLES, SPECIAL_TOKENS, train_tokenizer

CONVERSATION = [
    {"role": "user", "content": "<image>\nWhat color is the circle?"},
    {"role": "assistant", "content": "red"},
    {"role": "user", "content": "Is the red circle left or right of the blue square?"},
    {"role": "assistant", "content": "left"},
]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    out = tmp_path_factory.mktemp("tok")
    write_shapes(out, n_train=60, n_test=20, seed=2)
    texts = read_texts(out)
    cfg = ShapesConfig(distinct=False, min_objects=3, max_objects=5, image_size=80)
    texts += list(ShapesDataset(40, seed=1, split="test", config=cfg, questions_per_image=10).texts())
    return texts


@pytest.fixture(scope="module")
def tok():
    return train_tokenizer([vocabulary_text()])


def test_vocabulary_text_alone_covers_the_whole_generated_corpus(tok, corpus):
    ids = tok(corpus, add_special_tokens=False)["input_ids"]
    unknown = [t for t, row in zip(corpus, ids, strict=True) if tok.unk_token_id in row]
    assert not unknown, unknown[:3]
    trained = train_tokenizer(corpus)
    assert all(trained.unk_token_id not in row for row in trained(corpus)["input_ids"])


def test_special_tokens(tok):
    assert (tok.pad_token, tok.unk_token, tok.bos_token, tok.eos_token) == ("<pad>", "<unk>", "<s>", "</s>")
    assert tok.image_token == "<image>" and tok.image_token_id == tok.convert_tokens_to_ids("<image>")
    ids = tok.convert_tokens_to_ids(SPECIAL_TOKENS)
    assert ids == list(range(len(SPECIAL_TOKENS)))  # special tokens first, in order, distinct
    assert tok.pad_token_id == 0 and tok.unk_token_id == 1
    assert tok("<image><image>\n<image>what", add_special_tokens=False)["input_ids"] == [
        tok.image_token_id] * 3 + [tok.convert_tokens_to_ids("what")]
    for marker in ROLES.values():
        assert len(tok(marker, add_special_tokens=False)["input_ids"]) == 1


def test_lowercase_punctuation_split_and_decode_round_trip(tok, corpus):
    assert tok.tokenize("What color is the Circle?") == ["what", "color", "is", "the", "circle", "?"]
    assert tok.tokenize("a red circle, a blue square.") == ["a", "red", "circle", ",", "a", "blue", "square", "."]
    for text in corpus:
        if "<image>" not in text:
            ids = tok(text, add_special_tokens=False)["input_ids"]
            assert tok.decode(ids) == text.lower()
    assert tok.convert_tokens_to_ids("zebra") == tok.unk_token_id


def test_chat_template_marks_exactly_the_answers(tok):
    text = tok.apply_chat_template(CONVERSATION, tokenize=False)
    assert text == ("<s><|user|> <image>\nWhat color is the circle? <|assistant|> red</s>"
                    "<|user|> Is the red circle left or right of the blue square? <|assistant|> left</s>")
    out = tok.apply_chat_template(CONVERSATION, tokenize=True, return_dict=True, return_assistant_tokens_mask=True)
    ids, mask = out["input_ids"], out["assistant_masks"]
    answer_ids = [i for i, m in zip(ids, mask, strict=True) if m]
    assert tok.convert_ids_to_tokens(answer_ids) == ["red", "</s>", "left", "</s>"]
    prompt = tok.apply_chat_template(CONVERSATION[:1], tokenize=False, add_generation_prompt=True)
    assert text.startswith(prompt) and prompt.endswith("<|assistant|> ")
    parts = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What color is the circle?"}]}]
    assert tok.apply_chat_template(parts, tokenize=False) == "<s><|user|> <image>\nWhat color is the circle? "
    with pytest.raises(Exception, match="chat role bot is not one of system, user, assistant"):
        tok.apply_chat_template([{"role": "bot", "content": "hi"}], tokenize=False)


def test_save_and_load_round_trip(tok, tmp_path, corpus):
    tok.save_pretrained(tmp_path / "tok")
    path = tmp_path / "tok"
    for loaded in (PreTrainedTokenizerFast.from_pretrained(path), AutoTokenizer.from_pretrained(path)):
        assert loaded.get_vocab() == tok.get_vocab()
        assert loaded(corpus[:50])["input_ids"] == tok(corpus[:50])["input_ids"]
        assert (loaded.pad_token_id, loaded.bos_token_id, loaded.eos_token_id) == (0, 2, 3)
        assert loaded.image_token_id == tok.image_token_id
        rendered = loaded.apply_chat_template(CONVERSATION, tokenize=False)
        assert rendered == tok.apply_chat_template(CONVERSATION, tokenize=False)


def test_vocab_size_and_bad_input():
    texts = ["red red red blue blue green"]
    small = train_tokenizer(texts, vocab_size=len(SPECIAL_TOKENS) + 2)
    assert len(small) == len(SPECIAL_TOKENS) + 2
    assert small.convert_tokens_to_ids("green") == small.unk_token_id != small.convert_tokens_to_ids("red")
    with pytest.raises(ValueError, match="vocab_size=5 leaves no room"):
        train_tokenizer(texts, vocab_size=5)
    with pytest.raises(ValueError, match="no words to train the tokenizer on"):
        train_tokenizer([])


def test_the_model_packages_tokenizer_template_renders_it(tok):
    from og.model.chat import render

    turns = [("human", "<image>\nWhat color is the circle?"), ("gpt", "red"), ("human", "Is there a red cross?"),
             ("gpt", "no")]
    segments = render("tokenizer", turns, tokenizer=tok)
    assert [text for text, target in segments if target] == ["red</s>", "no</s>"]
    assert "".join(text for text, _ in segments) == tok.apply_chat_template(
        [{"role": "user" if r == "human" else "assistant", "content": c} for r, c in turns], tokenize=False)
