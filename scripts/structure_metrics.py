"""Rule structure: Tables 2, 5, 6 and the paper-formula Table 7 from the architecture alone (meta device)."""
from qrepro.evaluation.records import architecture_records, structure_records
from qrepro.metrics_io import write_metrics
from qrepro.model.llama import llama_config, meta_parameter_counts
from qrepro.runlog import log_to

p = snakemake.params  # noqa: F821
with log_to(snakemake.log[0]):  # noqa: F821
    vocab = p.architecture["vocab_size"]
    keys = ("model.architecture", "training.qlora.lora", "training.qlora.quantization.double_quant", "data.max_length")
    source = [f"{p.config_source}: {key}" for key in keys]
    if vocab is None:
        from transformers import AutoTokenizer
        vocab = len(AutoTokenizer.from_pretrained(snakemake.input.tokenizer))  # noqa: F821
        source.append(snakemake.input.tokenizer)  # noqa: F821
    config, total, lora = meta_parameter_counts(llama_config(p.architecture, vocab, 1, 2), p.lora)
    write_metrics(p.metrics, {**architecture_records(config, total, source),
                              **structure_records(config, total, lora, p.max_length, p.double_quant, source)})
