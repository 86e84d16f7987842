"""Rule base_model: the model both variants fine-tune, saved as safetensors."""
import pandas as pd
import torch
from transformers import AutoTokenizer

from qrepro.model.base import from_hub_or_disk, pretrain, random_weights
from qrepro.runlog import log_to
from qrepro.runtime import claim_checkpoint_dir, device_and_precision, fingerprint

p = snakemake.params  # noqa: F821
out = snakemake.output  # noqa: F821
with log_to(snakemake.log[0]):  # noqa: F821
    tokenizer = AutoTokenizer.from_pretrained(snakemake.input.tokenizer)  # noqa: F821
    history = []
    if p.init == "random":
        # the declared vocabulary (the paper's 32,000) when there is one, so the architecture is exactly the paper's
        vocab = p.architecture["vocab_size"] or len(tokenizer)
        if vocab < len(tokenizer):
            raise ValueError(f"model.architecture.vocab_size={vocab} is smaller than the tokenizer's {len(tokenizer)} "
                             "tokens; raise it or lower tokenizer.vocab_size")
        model = random_weights(p.architecture, vocab, p.seed, tokenizer.bos_token_id, tokenizer.eos_token_id)
        model = model.to(getattr(torch, p.load_dtype))  # stored like a hub checkpoint (the paper loads fp16)
    elif p.source == "pretrain":
        cuda, precision = device_and_precision(p.precision)
        claim_checkpoint_dir(p.work_dir, fingerprint(
            {"architecture": p.architecture, "pretrain": p.pretrain, "seed": p.seed, "precision": precision},
            [snakemake.input.pretrain_data, snakemake.input.tokenizer]))  # noqa: F821
        model, history = pretrain(tokenizer, snakemake.input.pretrain_data, p.architecture, p.pretrain,  # noqa: F821
                                  p.seed, precision, cuda, snakemake.threads, p.work_dir)  # noqa: F821
    else:
        location = p.hub_id if p.source == "hub" else p.local_path
        model = from_hub_or_disk(location, p.revision if p.source == "hub" else None,
                                 p.architecture, p.load_dtype)
    model.save_pretrained(out.model, safe_serialization=True)
    tokenizer.save_pretrained(out.model)
    pd.DataFrame(history).to_csv(out.log_history, index=False)
    print(model.config)
