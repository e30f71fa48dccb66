"""Chat templates: exact rendering, target flags, the tokenizer's own template."""

from __future__ import annotations

import pytest

from og.model import chat

TURNS = [("user", "<image>\nWhat is this?"), ("assistant", "A cat."), ("user", "Colour?"), ("assistant", "Red.")]


def test_llama3_exact_text_and_targets():
    segs = chat.render("llama3", TURNS)
    text = "".join(t for t, _ in segs)
    sys = chat.TEMPLATES["llama3"]["system"]
    expected = (
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n" + sys + "<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\n<image>\nWhat is this?<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\nA cat.<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nColour?<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\nRed.<|eot_id|>"
    )
    assert text == expected
    assert [t for t, target in segs if target] == ["A cat.<|eot_id|>", "Red.<|eot_id|>"]
    # segments alternate (adjacent same-flag pieces are merged)
    assert all(a[1] != b[1] for a, b in zip(segs, segs[1:], strict=False))


def test_vicuna_matches_llava_v1_format():
    text = chat.render_text("vicuna_v1", TURNS, bos="<s>", eos="</s>")
    sys = chat.TEMPLATES["vicuna_v1"]["system"]
    assert text == f"<s>{sys} USER: <image>\nWhat is this? ASSISTANT: A cat.</s>USER: Colour? ASSISTANT: Red.</s>"
    targets = [t for t, target in chat.render("vicuna_v1", TURNS) if target]
    assert targets == [" A cat.</s>", " Red.</s>"]


def test_prompt_ends_at_the_answer():
    assert chat.prompt("vicuna_v1", "<image>\nQ?").endswith("USER: <image>\nQ? ASSISTANT:")
    assert chat.prompt("llama3", "Q?").endswith("Q?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n")
    assert all(not target for _, target in chat.render("llama3", [("user", "Q?")], add_generation_prompt=True))


def test_plain_is_image_then_caption():
    segs = chat.render("plain", [("user", "<image>\nDescribe briefly."), ("assistant", "a dog")], bos="<s>")
    assert segs == [("<s><image>", False), ("a dog\n", True)]


def test_system_turn_overrides_default():
    text = chat.render_text("llama3", [("system", "Be brief."), ("user", "hi")])
    assert "Be brief." in text and chat.TEMPLATES["llama3"]["system"] not in text


def test_llava_role_aliases():
    assert chat.render("vicuna_v1", [("human", "q"), ("gpt", "a")]) == chat.render(
        "vicuna_v1", [("user", "q"), ("assistant", "a")])


def test_bad_input_errors():
    with pytest.raises(ValueError, match="unknown chat template 'chatml'"):
        chat.render("chatml", TURNS)
    with pytest.raises(ValueError, match="role 'bot'"):
        chat.render("llama3", [("bot", "x")])
    with pytest.raises(ValueError, match="system turn may only come first"):
        chat.render("llama3", [("user", "x"), ("system", "y")])
    with pytest.raises(ValueError, match="needs a tokenizer with a chat_template"):
        chat.render("tokenizer", TURNS)


class _JinjaTokenizer:
    """Just enough of a tokenizer: transformers' own jinja renderer over a chat_template."""

    chat_template = (
        "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}<|end|>{% endfor %}"
        "{% if add_generation_prompt %}<|assistant|>{% endif %}"
    )

    def apply_chat_template(self, conversation, tokenize=False, add_generation_prompt=False):
        from transformers.utils.chat_template_utils import render_jinja_template

        rendered, _ = render_jinja_template(conversations=[conversation], chat_template=self.chat_template,
                                            add_generation_prompt=add_generation_prompt)
        return rendered[0]


def test_tokenizer_template_finds_assistant_spans():
    segs = chat.render("tokenizer", TURNS, tokenizer=_JinjaTokenizer())
    assert "".join(t for t, _ in segs) == (
        "<|user|><image>\nWhat is this?<|end|><|assistant|>A cat.<|end|><|user|>Colour?<|end|>"
        "<|assistant|>Red.<|end|>")
    assert [t for t, target in segs if target] == ["A cat.<|end|>", "Red.<|end|>"]
    assert chat.prompt("tokenizer", "Q", tokenizer=_JinjaTokenizer()) == "<|user|>Q<|end|><|assistant|>"
