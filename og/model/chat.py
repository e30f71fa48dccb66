"""Chat templates as data, rendered into text segments flagged "train on it" or not.

Built in: `llama3` (the Llama-3 instruct format OG-LLaVA trains with), `vicuna_v1` (LLaVA-1.5)
and `plain` (LLaVA's stage-1 pretraining: the image, then the caption). `tokenizer` uses the
tokenizer's own `chat_template`. `<image>` stays in the text: the processor expands it.

`render(...)` returns `[(text, is_target), ...]`: concatenated, the segments are the whole
prompt; `is_target` marks assistant output (answer plus its end-of-turn marker), the only text
the loss is computed on. Tokenize each segment with `add_special_tokens=False`: the begin-of-text
token is part of the rendered text. `{bos}` / `{eos}` in a template are the tokenizer's own tokens.
"""

from __future__ import annotations

from typing import Any

IMAGE_TOKEN = "<image>"

TEMPLATES: dict[str, dict[str, Any]] = {
    "llama3": {
        "prefix": "<|begin_of_text|>",
        "system": (
            "You are a helpful language and vision assistant. You are able to understand the visual "
            "content that the user provides, and assist the user with a variety of tasks using natural language."
        ),
        "system_fmt": "<|start_header_id|>system<|end_header_id|>\n\n{content}<|eot_id|>",
        "user_fmt": "<|start_header_id|>user<|end_header_id|>\n\n{content}<|eot_id|>",
        "assistant_prefix": "<|start_header_id|>assistant<|end_header_id|>\n\n",
        "assistant_fmt": "{content}<|eot_id|>",
        "image_only_user": False,
    },
    "vicuna_v1": {
        "prefix": "{bos}",
        "system": (
            "A chat between a curious human and an artificial intelligence assistant. "
            "The assistant gives helpful, detailed, and polite answers to the human's questions."
        ),
        "system_fmt": "{content} ",
        "user_fmt": "USER: {content} ",
        "assistant_prefix": "ASSISTANT:",
        "assistant_fmt": " {content}{eos}",
        "image_only_user": False,
    },
    "plain": {  # LLaVA pretraining: the user turn is reduced to its image, the caption is the target
        "prefix": "{bos}",
        "system": "",
        "system_fmt": "",
        "user_fmt": "{content}",
        "assistant_prefix": "",
        "assistant_fmt": "{content}\n",
        "image_only_user": True,
    },
}
TOKENIZER_TEMPLATE = "tokenizer"
ROLES = {"system": "system", "user": "user", "assistant": "assistant", "human": "user", "gpt": "assistant"}


def template_names() -> list[str]:
    return [*TEMPLATES, TOKENIZER_TEMPLATE]


def _check(template_name: str) -> None:
    if template_name not in TEMPLATES and template_name != TOKENIZER_TEMPLATE:
        raise ValueError(f"unknown chat template {template_name!r}; use one of {', '.join(template_names())}")


def _normalise(turns: list[tuple[str, str]]) -> list[tuple[str, str]]:
    out = []
    for i, (role, text) in enumerate(turns):
        if role not in ROLES:
            raise ValueError(f"turn {i} has role {role!r}; use one of {', '.join(ROLES)}")
        if ROLES[role] == "system" and i != 0:
            raise ValueError(f"a system turn may only come first (found one at turn {i})")
        out.append((ROLES[role], text))
    return out


def _merge(segments: list[tuple[str, bool]]) -> list[tuple[str, bool]]:
    merged: list[tuple[str, bool]] = []
    for text, target in segments:
        if not text:
            continue
        if merged and merged[-1][1] == target:
            merged[-1] = (merged[-1][0] + text, target)
        else:
            merged.append((text, target))
    return merged


def _render_builtin(t: dict[str, Any], turns: list[tuple[str, str]], add_generation_prompt: bool,
                    bos: str, eos: str) -> list[tuple[str, bool]]:
    def fill(fmt: str, content: str = "") -> str:
        return fmt.replace("{bos}", bos).replace("{eos}", eos).replace("{content}", content)

    system = turns[0][1] if turns and turns[0][0] == "system" else t["system"]
    segments = [(fill(t["prefix"]), False)]
    if system and t["system_fmt"]:
        segments.append((fill(t["system_fmt"], system), False))
    for role, text in turns:
        if role == "user":
            if t["image_only_user"]:
                text = IMAGE_TOKEN * text.count(IMAGE_TOKEN)
            segments.append((fill(t["user_fmt"], text), False))
        elif role == "assistant":
            segments.append((fill(t["assistant_prefix"]), False))
            segments.append((fill(t["assistant_fmt"], text), True))
    if add_generation_prompt:
        segments.append((fill(t["assistant_prefix"]), False))
    return segments


def _render_tokenizer(tokenizer: Any, turns: list[tuple[str, str]],
                      add_generation_prompt: bool) -> list[tuple[str, bool]]:
    """Assistant spans found by rendering growing prefixes of the conversation."""
    if tokenizer is None or not getattr(tokenizer, "chat_template", None):
        raise ValueError("chat template 'tokenizer' needs a tokenizer with a chat_template; "
                         f"pick a built-in one instead: {', '.join(TEMPLATES)}")

    def apply(msgs: list[tuple[str, str]], gen: bool) -> str:
        conv = [{"role": r, "content": c} for r, c in msgs]
        return tokenizer.apply_chat_template(conv, tokenize=False, add_generation_prompt=gen) if conv else ""

    segments, done = [], ""
    for i, (role, _) in enumerate(turns):
        if role != "assistant":
            continue
        before, after = apply(turns[:i], True), apply(turns[: i + 1], False)
        if not (before.startswith(done) and after.startswith(before)):
            raise ValueError("the tokenizer's chat_template does not render conversations as growing "
                             "prefixes; use a built-in template")
        segments += [(before[len(done):], False), (after[len(before):], True)]
        done = after
    full = apply(turns, add_generation_prompt)
    segments.append((full[len(done):], False))
    return segments


def render(template_name: str, turns: list[tuple[str, str]], add_generation_prompt: bool = False,
           bos: str = "<s>", eos: str = "</s>", tokenizer: Any = None) -> list[tuple[str, bool]]:
    """Text segments `(text, is_assistant_output)` of a conversation; roles system/user/assistant."""
    _check(template_name)
    turns = _normalise(turns)
    if template_name == TOKENIZER_TEMPLATE:
        return _merge(_render_tokenizer(tokenizer, turns, add_generation_prompt))
    return _merge(_render_builtin(TEMPLATES[template_name], turns, add_generation_prompt, bos, eos))


def render_text(template_name: str, turns: list[tuple[str, str]], add_generation_prompt: bool = False,
                **kwargs: Any) -> str:
    """The conversation as one string."""
    return "".join(text for text, _ in render(template_name, turns, add_generation_prompt, **kwargs))


def prompt(template_name: str, question: str, **kwargs: Any) -> str:
    """A single-turn inference prompt ending where the assistant's answer starts."""
    return render_text(template_name, [("user", question)], add_generation_prompt=True, **kwargs)
