"""Rule probe_base: the configured architecture with random weights (no hub, no pretraining), saved once."""
from transformers import AutoTokenizer

from qrepro.model.base import random_weights
from qrepro.model.causal_lm import pretrained_config, random_model
from qrepro.model.quant import DTYPES
from qrepro.runlog import log_to

p = snakemake.params  # noqa: F821
with log_to(snakemake.log[0]):  # noqa: F821
    if p.architecture is None:  # a hub or local model's own config.json, its shape with random weights
        model = random_model(pretrained_config(p.model_location, p.revision)[0], p.seed)
    else:
        vocab = p.architecture["vocab_size"] or len(AutoTokenizer.from_pretrained(snakemake.input.tokenizer))  # noqa: F821
        model = random_weights(p.architecture, vocab, p.seed)
    model = model.to(DTYPES[p.weights_dtype])
    model.save_pretrained(snakemake.output.model, safe_serialization=True, max_shard_size="100GB")  # noqa: F821
    print(model.config)
