"""Rule model_size: a variant's real size in memory and on disk (Table 5, measured)."""
import tempfile

from pathlib import Path

import torch

from qrepro.footprint import disk_bytes, memory_bytes
from qrepro.loading import load_4bit_base, load_for_eval
from qrepro.metrics_io import write_metrics
from qrepro.runlog import log_to

p = snakemake.params  # noqa: F821
inp = snakemake.input  # noqa: F821
variant = snakemake.wildcards.variant  # noqa: F821
MB = 1024 ** 2
with log_to(snakemake.log[0]):  # noqa: F821
    cuda = torch.cuda.is_available()
    # The deployable form: full in 16 bit, QLoRA as its NF4 base plus 16-bit adapters.
    model = load_for_eval(variant, inp.base_model, str(Path(inp.model[0]).parent), p.quantization, p.dtype_16bit, cuda)
    memory = memory_bytes(model)
    with tempfile.TemporaryDirectory() as tmp:
        if variant == "full":
            model.save_pretrained(tmp)
            on_disk = disk_bytes(tmp)
            disk_method = "Bytes of the 16-bit model saved as safetensors."
        else:
            del model  # the adapted model holds LoRA layers; save the plain NF4 base instead
            load_4bit_base(inp.base_model, p.quantization, p.dtype_16bit, cuda).save_pretrained(tmp)
            on_disk = disk_bytes(tmp) + disk_bytes(Path(inp.model[0]).parent)
            disk_method = "Bytes of the NF4 base saved as safetensors (bitsandbytes serialization) + the adapter file."
    source = [inp.base_model, *inp.model]
    write_metrics(p.metrics_dir, variant, {
        "model_size_memory_mb": dict(value=memory["total"] / MB, unit="MB (1024^2 bytes)", inputs=source, method=(
            f"Bytes of every parameter and buffer of the loaded model ({p.dtype_16bit}), plus bitsandbytes "
            "quantization state (absmax and nested double-quant state) that get_memory_footprint() omits."),
            details=memory),
        "model_size_disk_mb": dict(value=on_disk / MB, unit="MB (1024^2 bytes)", inputs=source, method=disk_method),
    })
