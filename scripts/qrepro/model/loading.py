"""Loading a trained variant for evaluation: base, full, qlora (4-bit base + adapter), qlora_merged."""
from __future__ import annotations

from pathlib import Path

import torch

from qrepro.model.artifacts import check_adapter, check_safetensors
from qrepro.model.causal_lm import load_pretrained
from qrepro.model.quant import DTYPES, assert_quantized, bnb_config, require_bitsandbytes


def eval_dtype(requested: str, cuda: bool) -> str:
    """Evaluation dtype: 'auto' resolves as training precision does; an explicit dtype is used as given."""
    from qrepro.hardware import resolve_precision
    return resolve_precision(requested, cuda) if requested == "auto" else requested


def load_4bit_base(base_dir: str, quantization: dict, dtype: str, cuda: bool):
    require_bitsandbytes(cuda)
    model = load_pretrained(base_dir, dtype=DTYPES[dtype], quantization_config=bnb_config(
        quantization["quant_type"], quantization["double_quant"], dtype))
    assert_quantized(model)
    return model


def load_for_eval(model_name: str, base_dir: str, model_dir: str | None, quantization: dict, dtype: str, cuda: bool):
    """model_name: base | full | qlora | qlora_merged. The model is put in eval mode on the device. peft (and with it
    bitsandbytes and torch's compiler stack, several seconds) is imported only for the kinds that need it."""
    if model_name == "base":
        model = load_pretrained(base_dir, dtype=DTYPES[dtype])
    elif model_name == "full":
        for weights in Path(model_dir).glob("*.safetensors"):
            check_safetensors(weights)
        model = load_pretrained(model_dir, dtype=DTYPES[dtype])
    elif model_name in ("qlora", "qlora_merged"):
        from peft import PeftModel

        check_adapter(model_dir)
        model = load_4bit_base(base_dir, quantization, dtype, cuda)
        if model_name == "qlora_merged":
            # dequantize the NF4 base the adapter was trained on into 16-bit, then fold the adapter in
            model = model.dequantize().to(DTYPES[dtype])
            model = PeftModel.from_pretrained(model, model_dir).merge_and_unload()
        else:
            model = PeftModel.from_pretrained(model, model_dir)
    else:
        raise ValueError(f"unknown model {model_name!r}")
    if cuda and model_name not in ("qlora",):
        model = model.to("cuda")
    return model.eval()


def prepare_eval(model_name: str, base_dir: str, model_files: list[str] | None, tokenizer_dir: str, quantization: dict,
                 requested_dtype: str, threads: int):
    """Everything an evaluation job starts with: threads, device, dtype, tokenizer and the loaded model."""
    from transformers import AutoTokenizer

    from qrepro.data.tokenizer import finish
    from qrepro.runtime import set_threads

    set_threads(threads)
    cuda = torch.cuda.is_available()
    dtype = eval_dtype(requested_dtype, cuda)
    tokenizer = finish(AutoTokenizer.from_pretrained(tokenizer_dir))
    model_dir = str(Path(model_files[0]).parent) if model_files else None
    return load_for_eval(model_name, base_dir, model_dir, quantization, dtype, cuda), tokenizer, dtype, cuda
