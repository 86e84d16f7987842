"""The tokenizer: a BPE trained with `tokenizers` on the training text, or the model's own."""
from __future__ import annotations

from typing import Iterable

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

from .hub import hub_error

SPECIAL_TOKENS = ["<unk>", "<s>", "</s>"]


def train_bpe(texts: Iterable[str], vocab_size: int):
    """Byte-level BPE with LLaMA's special tokens; prepends <s> like LLaMA's tokenizer."""
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator((t for t in texts if t.strip()), trainer=trainer)
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B",
                                                       special_tokens=[("<s>", tok.token_to_id("<s>"))])
    return finish(PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>",
                                          unk_token="<unk>"))


def from_model(model_id: str, revision: str | None):
    from transformers import AutoTokenizer
    try:
        tok = AutoTokenizer.from_pretrained(model_id, revision=revision)
    except OSError as err:
        raise hub_error(f"tokenizer of {model_id}", "model.source: local with model.local_path") from err
    return finish(tok)


def finish(tokenizer):
    """The paper's settings: pad = eos, right padding."""
    tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "right"
    return tokenizer
