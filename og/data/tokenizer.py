"""A tiny word-level tokenizer trained locally (the `tokenizers` library) on generated text.

Used by the quickstart's tiny LLM: words are lower-cased, split on whitespace and punctuation
(each punctuation mark is its own token), and every word of the training texts gets an id, so
a corpus the tokenizer was trained on never produces `<unk>`. Special tokens: `<pad>`, `<unk>`,
`<s>`, `</s>`, the image placeholder `<image>`, and the chat role markers of `CHAT_TEMPLATE`.

The chat template (role markers, then the text; the assistant's turn ends with `</s>` and is
wrapped in `{% generation %}` so `return_assistant_tokens_mask=True` finds the answer tokens)::

    <s><|user|> <image>\\nWhat color is the circle? <|assistant|> red</s>

Saved and loaded with `save_pretrained` / `PreTrainedTokenizerFast.from_pretrained` (or
`AutoTokenizer.from_pretrained`); `tokenizer.image_token` / `image_token_id` name `<image>`.
"""

from __future__ import annotations

from collections.abc import Iterable

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

PAD, UNK, BOS, EOS, IMAGE = "<pad>", "<unk>", "<s>", "</s>", "<image>"
ROLES = {"system": "<|system|>", "user": "<|user|>", "assistant": "<|assistant|>"}
SPECIAL_TOKENS = [PAD, UNK, BOS, EOS, IMAGE, *ROLES.values()]

CHAT_TEMPLATE = (
    "{%- macro text(content) -%}"
    "{%- if content is string -%}{{ content }}"
    "{%- else -%}{%- for part in content -%}"
    "{%- if part['type'] == 'image' -%}{{- '" + IMAGE + "\\n' -}}"
    "{%- elif part['type'] == 'text' -%}{{ part['text'] }}"
    "{%- endif -%}{%- endfor -%}{%- endif -%}"
    "{%- endmacro -%}"
    "{{- bos_token -}}"
    "{%- for message in messages -%}"
    "{%- if message['role'] not in ['system', 'user', 'assistant'] -%}"
    "{{- raise_exception('chat role ' ~ message['role'] ~ ' is not one of system, user, assistant') -}}"
    "{%- elif message['role'] == 'assistant' -%}"
    "{{- '<|assistant|> ' -}}{%- generation -%}{{- text(message['content']) + eos_token -}}{%- endgeneration -%}"
    "{%- else -%}"
    "{{- '<|' + message['role'] + '|> ' + text(message['content']) + ' ' -}}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|assistant|> ' -}}{%- endif -%}"
)


def _backend() -> Tokenizer:
    tok = Tokenizer(models.WordLevel(unk_token=UNK))
    tok.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Whitespace(), pre_tokenizers.Punctuation("isolated")])
    tok.decoder = decoders.WordPiece(prefix="##", cleanup=True)  # joins words, no space before punctuation
    return tok


def train_tokenizer(texts: Iterable[str], vocab_size: int | None = None,
                    min_frequency: int = 1) -> PreTrainedTokenizerFast:
    """Train a word-level tokenizer on `texts` and wrap it for transformers.

    `vocab_size=None` keeps every word seen at least `min_frequency` times; a smaller size keeps
    the most frequent words (the rest become `<unk>`).
    """
    if vocab_size is not None and vocab_size <= len(SPECIAL_TOKENS):
        raise ValueError(f"vocab_size={vocab_size} leaves no room for words beyond the "
                         f"{len(SPECIAL_TOKENS)} special tokens; use a larger size or None")
    tok = _backend()
    trainer = trainers.WordLevelTrainer(vocab_size=vocab_size or 10_000_000, min_frequency=min_frequency,
                                        special_tokens=SPECIAL_TOKENS, show_progress=False)
    tok.train_from_iterator(texts, trainer=trainer)
    if tok.get_vocab_size() <= len(SPECIAL_TOKENS):
        raise ValueError("no words to train the tokenizer on: pass a non-empty list of texts")
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token=BOS, eos_token=EOS, pad_token=PAD, unk_token=UNK,
        extra_special_tokens={"image_token": IMAGE}, chat_template=CHAT_TEMPLATE,
    )
