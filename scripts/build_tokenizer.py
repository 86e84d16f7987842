"""Rule tokenizer: train a BPE on the training text, or take the model's own tokenizer."""
from datasets import load_from_disk

from qrepro.data.tokenizer import from_model, train_bpe, training_texts
from qrepro.runlog import log_to

p = snakemake.params  # noqa: F821
with log_to(snakemake.log[0]):  # noqa: F821
    if p.source == "train":
        raw = load_from_disk(snakemake.input.raw)  # noqa: F821
        tokenizer = train_bpe(training_texts(raw), p.vocab_size)
    else:
        tokenizer = from_model(p.model_id, p.revision)
    tokenizer.save_pretrained(snakemake.output.tokenizer)  # noqa: F821
    print(f"vocab size {len(tokenizer)}, pad={tokenizer.pad_token!r}, padding side {tokenizer.padding_side}")
