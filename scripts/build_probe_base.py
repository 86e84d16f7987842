"""Rule probe_base: the configured architecture with random weights (no hub, no pretraining), saved once."""
import torch
from transformers import AutoTokenizer

from qrepro.base_model import random_weights
from qrepro.runlog import log_to

p = snakemake.params  # noqa: F821
with log_to(snakemake.log[0]):  # noqa: F821
    arch = dict(p.architecture)
    if arch["vocab_size"] is None:
        arch["vocab_size"] = len(AutoTokenizer.from_pretrained(snakemake.input.tokenizer))  # noqa: F821

    class _Vocab:  # random_weights only needs the vocabulary size and special ids
        bos_token_id, eos_token_id = 1, 2

        def __len__(self):
            return arch["vocab_size"]

    model = random_weights(_Vocab(), arch, p.seed).to(getattr(torch, p.dtype))
    model.save_pretrained(snakemake.output.model, safe_serialization=True, max_shard_size="100GB")  # noqa: F821
    print(model.config)
