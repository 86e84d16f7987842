"""Rule flops: FLOPs per optimizer step, analytic (PaLM-style) and counted by torch (Table 7)."""
import json

from datasets import load_from_disk
from transformers import AutoTokenizer, DataCollatorForLanguageModeling

from qrepro.data.tokenizer import finish
from qrepro.evaluation.flop_count import counted_step_flops
from qrepro.evaluation.records import analytic_flops_records
from qrepro.metrics_io import write_metrics
from qrepro.model.anatomy import describe
from qrepro.model.quant import DTYPES
from qrepro.runlog import log_to
from qrepro.runtime import device_and_precision, seed_everything, set_threads
from qrepro.training.variants import build

p = snakemake.params  # noqa: F821
inp = snakemake.input  # noqa: F821
variant = snakemake.wildcards.variant  # noqa: F821
with log_to(snakemake.log[0]):  # noqa: F821
    set_threads(snakemake.threads)  # noqa: F821
    seed_everything(p.seed)
    cuda, precision = device_and_precision(p.precision)
    tokenizer = finish(AutoTokenizer.from_pretrained(inp.tokenizer))
    model = build(variant, inp.base_model, p.hp, precision, cuda)
    lora = p.hp.get("lora") if variant == "qlora" else None
    stats = json.loads(open(inp.stats).read())["splits"]["train"]
    seq_len = stats["tokens_with_padding"] // stats["samples"]
    sequences = p.hp["batch_size"] * p.hp["gradient_accumulation_steps"]
    source = [inp.base_model, inp.stats]
    # One real optimizer step: the first batch x accumulation samples of the training split.
    data = load_from_disk(inp.tokenized)["train"]
    collate = DataCollatorForLanguageModeling(tokenizer, mlm=False)
    device = "cuda" if cuda else "cpu"
    batches = [{k: v.to(device) for k, v in collate([data[i] for i in range(s, s + p.hp["batch_size"])]).items()}
               for s in range(0, sequences, p.hp["batch_size"])]
    autocast = DTYPES[precision] if precision in ("bf16", "fp16") else None
    if cuda and variant == "full":
        model = model.to(device)
    counted = counted_step_flops(model, batches, autocast)
    records = analytic_flops_records(describe(inp.base_model, lora), lora, variant, seq_len, sequences,
                                     stats["tokens"] / stats["tokens_with_padding"], p.hp["gradient_checkpointing"],
                                     counted["total"], source)
    records["flops_per_step_counted"] = dict(
        value=counted["total"], inputs=source + [inp.tokenizer, inp.tokenized],
        details={"micro_batches": len(batches), "sequences": sequences, "seq_len": seq_len,
                 "per_operator": counted["per_operator"]})
    write_metrics(p.metrics, records)
