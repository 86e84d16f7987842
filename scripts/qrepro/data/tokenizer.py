"""The tokenizer: a BPE trained with `tokenizers` on the training text, or the model's own."""
from __future__ import annotations

from pathlib import Path
from typing import Iterable

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

from qrepro.hub import hub_error, snapshot_commit

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
        raise hub_error(f"tokenizer of {model_id}", "model.source: local with model.local_path", cause=err) from err
    return finish(tok)


TOKENIZER_FILES = ("tokenizer_config.json", "tokenizer.json", "tokenizer.model")


def model_tokenizer_revision(model_id: str, revision: str | None) -> str | None:
    """The hub commit a model's tokenizer was loaded from (None for a folder on disk), from the hub cache."""
    if Path(model_id).exists():
        return None
    return snapshot_commit(model_id, revision, TOKENIZER_FILES)


def training_texts(raw) -> list[str]:
    """What the BPE is trained on: the train rows, then the pretraining rows when there are any
    (train_bpe skips the blank ones)."""
    return list(raw["train"]["text"]) + (list(raw["pretrain"]["text"]) if "pretrain" in raw else [])


def finish(tokenizer):
    """The paper's settings: pad = eos, right padding."""
    tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "right"
    return tokenizer
