"""Rule model_size: a variant's real size in memory and on disk (Table 5, measured)."""
import tempfile
from pathlib import Path

import torch

from qrepro.evaluation.footprint import disk_bytes, memory_bytes
from qrepro.metrics_io import write_metrics
from qrepro.model.loading import load_4bit_base, load_for_eval
from qrepro.runlog import log_to
from qrepro.units import MB

p = snakemake.params  # noqa: F821
inp = snakemake.input  # noqa: F821
variant = snakemake.wildcards.variant  # noqa: F821
with log_to(snakemake.log[0]):  # noqa: F821
    cuda = torch.cuda.is_available()
    # The deployable form: full in 16 bit, QLoRA as its NF4 base plus the adapters as peft loads them.
    model = load_for_eval(variant, inp.get("base_model"), str(Path(inp.model[0]).parent), p.quantization, p.dtype_16bit,
                          cuda)
    memory = memory_bytes(model)
    adapter_dtypes = sorted({str(t.dtype).removeprefix("torch.") for n, t in model.named_parameters() if "lora_" in n})
    if variant == "qlora":
        memory["adapter_dtypes"] = adapter_dtypes
        memory["adapter_bytes"] = sum(t.numel() * t.element_size() for n, t in model.named_parameters() if "lora_" in n)
    with tempfile.TemporaryDirectory() as tmp:
        if variant == "full":
            model.save_pretrained(tmp)
            on_disk = disk_bytes(tmp)
        else:
            del model  # the adapted model holds LoRA layers; save the plain NF4 base instead
            load_4bit_base(inp.base_model, p.quantization, p.dtype_16bit, cuda).save_pretrained(tmp)
            on_disk = disk_bytes(tmp) + disk_bytes(Path(inp.model[0]).parent)
    source = [path for path in (inp.get("base_model"),) if path] + list(inp.model)
    fields = {"dtype_16bit": p.dtype_16bit, "adapter_dtypes": ", ".join(adapter_dtypes)}
    write_metrics(p.metrics, {
        "model_size_memory_mb": dict(value=memory["total"] / MB, inputs=source, method_fields=fields, details=memory),
        "model_size_disk_mb": dict(value=on_disk / MB, inputs=source, method_fields=fields),
    })
