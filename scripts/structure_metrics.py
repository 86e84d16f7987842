"""Rule structure: Tables 2, 5, 6 and the paper-formula Table 7 from the architecture alone (meta device)."""
from pathlib import Path

from qrepro.evaluation.records import architecture_records, meta_model, structure_records
from qrepro.metrics_io import write_metrics
from qrepro.model.llama import count_parameters, expected_lora_params
from qrepro.runlog import log_to

p = snakemake.params  # noqa: F821
with log_to(snakemake.log[0]):  # noqa: F821
    vocab = p.architecture["vocab_size"]
    source = ["config: model.architecture"]
    if vocab is None:
        from transformers import AutoTokenizer
        vocab = len(AutoTokenizer.from_pretrained(snakemake.input.tokenizer))  # noqa: F821
        source.append(snakemake.input.tokenizer)  # noqa: F821
    config, model = meta_model(p.architecture, vocab)
    total, _ = count_parameters(model)
    lora = expected_lora_params(config, p.lora["target_modules"], p.lora["r"])
    write_metrics(p.architecture_dir, Path(p.architecture_dir).name, architecture_records(config, total, source))
    write_metrics(p.structure_dir, Path(p.structure_dir).name,
                  structure_records(config, total, lora, p.max_length, p.double_quant, source))
