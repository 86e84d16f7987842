"""Rule compression_across_models: each published model's compression, trainable share and training state, from its
shipped architecture file (configs/architectures/<model>.yaml) alone, on the meta device."""
from pathlib import Path

import yaml

from qrepro.evaluation.cross_model import compression_records
from qrepro.metrics_io import write_metrics
from qrepro.model.causal_lm import build_config
from qrepro.runlog import log_to

p = snakemake.params  # noqa: F821
with log_to(snakemake.log[0]):  # noqa: F821
    for path, scope in zip(snakemake.input.architectures, p.scopes, strict=True):  # noqa: F821
        shipped = yaml.safe_load(Path(path).read_text())
        arch = shipped["architecture"]
        source = [path, *(f"{p.config_source}: {key}" for key in p.config_keys)]
        config = build_config(arch, arch["vocab_size"], 1, 2)
        published = {key: shipped[key] for key in ("hub_id", "config_json", "revision", "published_total_params")}
        records = compression_records(config, p.lora, p.paper_targets, p.size_targets, p.double_quant, p.full_optim,
                                      p.full_weights_dtype, p.qlora_optim, source, published)
        write_metrics({file: spec for file, spec in p.metrics.items() if spec["scope"] == scope}, records)
        print(f"{scope}: {len(records)} metric files from {path}")
