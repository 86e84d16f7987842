"""What a model is made of, read from the model object on the meta device (no weights): its parameters, the linear
layers bitsandbytes makes 4-bit (transformers' own rule), and the modules LoRA adapts (peft's own resolution).
Nothing here assumes a family's module names."""
from __future__ import annotations

import re
from dataclasses import dataclass

import torch

from qrepro.model.causal_lm import count_parameters, meta_model

ALL_LINEAR = "all-linear"  # peft's name for every linear layer but the output head
_LAYER_INDEX = re.compile(r"\.(\d+)\.")


class LoraTargetError(ValueError):
    """A LoRA target name that matches no module of the model: peft would silently adapt fewer modules."""


@dataclass(frozen=True)
class ModelFacts:
    config: object
    family: str                                  # transformers' model class, e.g. Qwen2ForCausalLM
    total_params: int                            # every base parameter (count_parameters)
    quantized: dict[str, tuple[int, int]]        # module name -> (in, out) of each Linear bitsandbytes makes 4-bit
    output_head_params: int                      # the LM head's weight: a matmul even when tied to the embeddings
    trainable_params: int                        # QLoRA's trainable parameters as peft builds them (0 without lora)
    lora_modules: tuple[str, ...]                # module names peft adapted (empty without lora)

    @property
    def quantized_numels(self) -> list[int]:
        return [i * o for i, o in self.quantized.values()]

    @property
    def linear_names(self) -> list[str]:
        """The distinct names of the decoder's linear layers (what lora.target_modules may list)."""
        return sorted({name.rsplit(".", 1)[-1] for name in self.quantized})

    @property
    def lora_names(self) -> list[str]:
        return sorted({name.rsplit(".", 1)[-1] for name in self.lora_modules})

    def layers(self) -> dict[int, dict[str, tuple[int, int]]]:
        """Quantized linears by decoder layer: {layer index: {short name: (in, out)}}."""
        out: dict[int, dict[str, tuple[int, int]]] = {}
        for name, shape in self.quantized.items():
            out.setdefault(layer_index(name), {})[name.rsplit(".", 1)[-1]] = shape
        return out


def layer_index(module_name: str) -> int:
    """The decoder layer a module belongs to (the first number in its name, model.layers.3.mlp -> 3), -1 outside."""
    found = _LAYER_INDEX.search(module_name)
    return int(found.group(1)) if found else -1


def head_dim(config) -> int:
    """Size of one attention head: the config's own head_dim where it declares one (Mistral, Gemma), else hidden/heads."""
    return getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads


def quantized_linears(model) -> dict[str, tuple[int, int]]:
    """(in, out) of every nn.Linear that bitsandbytes' 4-bit loading replaces, decided by transformers' own rule
    (HfQuantizer.get_modules_to_not_convert: the output head, tied weights, the family's fp32 modules stay 16-bit)."""
    from transformers.quantizers.base import HfQuantizer
    from transformers.quantizers.quantizers_utils import should_convert_module
    kept = HfQuantizer.get_modules_to_not_convert(model, None, getattr(model, "_keep_in_fp32_modules", None))
    return {name: (m.in_features, m.out_features) for name, m in model.named_modules()
            if type(m) is torch.nn.Linear and should_convert_module(name, kept)}


def check_lora_targets(model, target_modules) -> None:
    """Every listed name must match a module (as peft matches: the whole name or its last components), else stop:
    peft adapts the names that match and says nothing about the rest."""
    if target_modules == ALL_LINEAR:
        return
    names = [name for name, _ in model.named_modules()]
    missing = [t for t in target_modules if not any(n == t or n.endswith(f".{t}") for n in names)]
    if missing:
        head = model.get_output_embeddings()  # a loaded 4-bit model's linears are Linear4bit, an nn.Linear subclass
        linear = sorted({n.rsplit(".", 1)[-1] for n, m in model.named_modules()
                         if isinstance(m, torch.nn.Linear) and m is not head})
        raise LoraTargetError(
            f"lora.target_modules: {', '.join(missing)} match no module of {type(model).__name__}. "
            f"Its linear layers are: {', '.join(linear)}. Fix: set "
            f"training.qlora.lora.target_modules to names from that list, or to {ALL_LINEAR} (every linear layer but the "
            "output head).")


def lora_config(lora: dict):
    from peft import LoraConfig
    targets = lora["target_modules"]
    return LoraConfig(r=lora["r"], lora_alpha=lora["alpha"], lora_dropout=lora["dropout"], bias=lora["bias"],
                      target_modules=targets if targets == ALL_LINEAR else list(targets), task_type="CAUSAL_LM")


def describe(config, lora: dict | None = None) -> ModelFacts:
    """The facts of a config's model, built on the meta device. With lora, peft adapts a second meta copy exactly as
    training does (get_peft_model with the same LoraConfig): its trainable parameters and the modules it chose.
    config: a transformers config, or a model folder (or hub id) whose config.json is read."""
    model = meta_model(config)
    total, _ = count_parameters(model)
    head = model.get_output_embeddings()
    trainable, adapted = 0, ()
    if lora:
        from peft import get_peft_model
        check_lora_targets(model, lora["target_modules"])
        with torch.device("meta"):
            peft_model = get_peft_model(meta_model(model.config), lora_config(lora))
        trainable = sum(p.numel() for p in peft_model.parameters() if p.requires_grad)
        adapted = tuple(peft_model.targeted_module_names)
    return ModelFacts(config=model.config, family=type(model).__name__, total_params=total,
                      quantized=quantized_linears(model), output_head_params=head.weight.numel() if head else 0,
                      trainable_params=trainable, lora_modules=adapted)
