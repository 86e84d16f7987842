"""Rule structure: Tables 2, 5, 6 and the paper-formula Table 7 from the architecture alone (meta device)."""
from qrepro.evaluation.records import architecture_records, structure_records
from qrepro.metrics_io import write_metrics
from qrepro.model.anatomy import describe
from qrepro.model.causal_lm import build_config, pretrained_config
from qrepro.runlog import log_to

p = snakemake.params  # noqa: F821
with log_to(snakemake.log[0]):  # noqa: F821
    keys = ("training.qlora.lora", "training.qlora.quantization.double_quant", "data.max_length")
    source = [f"{p.config_source}: {key}" for key in keys]
    if p.architecture is None:  # a hub or local model's own config.json
        config, read = pretrained_config(p.model_location, p.revision)
        source.append(read)
    else:
        source.append(f"{p.config_source}: model.architecture")
        vocab = p.architecture["vocab_size"]
        if vocab is None:
            from transformers import AutoTokenizer
            vocab = len(AutoTokenizer.from_pretrained(snakemake.input.tokenizer))  # noqa: F821
            source.append(snakemake.input.tokenizer)  # noqa: F821
        config = build_config(p.architecture, vocab, 1, 2)
    facts = describe(config, p.lora)
    write_metrics(p.metrics, {**architecture_records(facts, source),
                              **structure_records(facts, p.max_length, p.double_quant, source)})
