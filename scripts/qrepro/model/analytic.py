"""Numbers that depend only on the architecture: the paper's size and FLOP formulas, the real
bitsandbytes NF4 footprint, and the PaLM-style analytic FLOPs. Pure arithmetic, no weights.

MB means 1024² bytes throughout, as in the paper.
"""
from __future__ import annotations

from qrepro.units import MB

PAPER_BATCH = 4              # the paper's FLOP formula hard-codes 4 sequences per step
PAPER_QUANT_SPEEDUP = 0.25   # the paper's assumption that 4-bit ops cost a quarter: not a FLOP count
BNB_BLOCKSIZE = 64           # bitsandbytes 4-bit: one absmax per 64 weights
BNB_NESTED_BLOCKSIZE = 256   # double quantization: absmax quantized to 8 bit in blocks of 256


# ---- the paper's protocol (paper/PROTOCOL.md) ----

def paper_sizes_mb(total_params: int, trainable_params: int) -> dict:
    """Table 5 as the paper computed it: counts × bytes, ignoring 16-bit modules and quant constants."""
    fp16 = total_params * 2 / MB
    base = total_params * 0.5 / MB
    adapters = trainable_params * 2 / MB
    return {"fp16": fp16, "base_4bit": base, "adapters": adapters, "qlora_total": base + adapters}


def paper_flops_per_step(total_params: int, trainable_params: int, seq_len: int) -> dict:
    """Table 7 as the paper computed it, hard-coded batch of 4 and 0.25 factor included."""
    full = 6 * total_params * seq_len * PAPER_BATCH
    qlora = 6 * total_params * seq_len * PAPER_BATCH * PAPER_QUANT_SPEEDUP + 6 * trainable_params * seq_len * PAPER_BATCH
    return {"full": full, "qlora": qlora}


# ---- what bitsandbytes really stores ----

def nf4_bits_per_weight(double_quant: bool, numel: int) -> float:
    """Storage bits per quantized weight, quantization constants included (QLoRA paper: 4.127 / 4.5)."""
    return 8 * quantized_linear_bytes(numel, double_quant) / numel


def quantized_linear_bytes(numel: int, double_quant: bool) -> int:
    """Bytes of one bitsandbytes Linear4bit weight: packed 4-bit data + absmax (+ nested state).

    Without double quant the absmax is one fp32 per 64-block; with it, one uint8 per block plus an fp32
    absmax per 256 of those, the 256-entry fp32 code book and an fp32 offset. The 16-entry NF4 code
    table is shared by all layers and not counted per layer.
    """
    blocks = -(-numel // BNB_BLOCKSIZE)
    packed = -(-numel // 2)
    if not double_quant:
        return packed + 4 * blocks
    nested_blocks = -(-blocks // BNB_NESTED_BLOCKSIZE)
    return packed + blocks + 4 * nested_blocks + 256 * 4 + 4


def bnb_footprint_bytes(facts, double_quant: bool, dtype_bytes: int = 2) -> dict:
    """The real in-memory size of a 4-bit model: the linears bitsandbytes quantizes (facts.quantized, transformers'
    own choice) + everything else in 16 bit (embeddings, output head, norms, biases)."""
    linear = facts.quantized_numels
    quantized = sum(quantized_linear_bytes(n, double_quant) for n in linear)
    unquantized = (facts.total_params - sum(linear)) * dtype_bytes
    return {"quantized_bytes": quantized, "unquantized_bytes": unquantized, "total_bytes": quantized + unquantized,
            "quantized_params": sum(linear), "unquantized_params": facts.total_params - sum(linear)}


# ---- analytic FLOPs ----

# The decoder layer the executed-FLOPs formula is written for: seven separate projections (LLaMA, Mistral, Qwen2, Gemma)
SEPARATE_PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
FIRST_LAYER_INPUTS = ("q_proj", "k_proj", "v_proj")  # read the embedding output directly


class FormulaNotApplicable(ValueError):
    """The model's layout breaks an assumption of a FLOPs formula; use the counted value."""


def matmul_params(facts) -> int:
    """Weights that take part in matmuls: every decoder linear plus the output head (the input embedding
    is a lookup; norms are elementwise)."""
    return sum(facts.quantized_numels) + facts.output_head_params


def attention_flops_per_token(config, seq_len: int) -> int:
    """Forward attention per token, 4·L·H·Q·T: QK^T and AV over T positions, H query heads of size Q
    (causality ignored, as PaLM and torch's FLOP counter do)."""
    from qrepro.model.anatomy import head_dim
    return 4 * config.num_hidden_layers * config.num_attention_heads * head_dim(config) * seq_len


def attention_window(config) -> int | None:
    """The sliding attention window where the config turns one on (Mistral; Qwen2 with use_sliding_window), else None."""
    window = getattr(config, "sliding_window", None)
    if not window or getattr(config, "use_sliding_window", True) is False:
        return None
    return window


def model_formula_caveats(facts, seq_len: int) -> list[str]:
    """Where model_flops_per_token's assumptions fail for this model (empty: it holds)."""
    window = attention_window(facts.config)
    if window and window < seq_len:
        return [f"sliding attention window of {window} tokens, shorter than the {seq_len}-token sequence: the formula "
                "counts attention over every earlier position"]
    return []


def executed_formula_caveats(facts, seq_len: int) -> list[str]:
    """Where executed_flops_per_token's assumptions fail (empty: it holds). It is written for decoder layers of seven
    separate projections and SDPA's flash attention (softcapped attention runs eagerly, without the recompute)."""
    found = model_formula_caveats(facts, seq_len)
    layouts = {tuple(sorted(layer)) for index, layer in facts.layers().items() if index >= 0}
    if layouts != {tuple(sorted(SEPARATE_PROJECTIONS))}:
        names = ", ".join(sorted({n for layout in layouts for n in layout}))
        found.append(f"decoder layers of {names}, not the seven separate projections the formula names")
    if getattr(facts.config, "attn_logit_softcapping", None):
        found.append("attention logit softcapping (eager attention: no flash-attention recompute)")
    return found


def model_flops_per_token(facts, seq_len: int, variant: str) -> int:
    """Model FLOPs per training token (PaLM appendix B), the numerator of MFU: no recomputation of any kind.

    full:  6N + 12·L·H·Q·T (forward 2N, backward 4N; attention 4·L·H·Q·T forward, twice that backward).
    qlora: 2N forward + 2N activation gradients (frozen weights need no weight gradient) + 6·N_lora
           + 12·L·H·Q·T.
    N = matmul_params (decoder linears + output head); N_lora = facts.trainable_params. Holds for any layout of dense
    linears (a fused projection costs what its parts do) with attention over every earlier position.
    """
    n = matmul_params(facts)
    attention = 3 * attention_flops_per_token(facts.config, seq_len)
    if variant == "full":
        return 6 * n + attention
    if variant == "qlora":
        return 4 * n + 6 * facts.trainable_params + attention
    raise ValueError(f"unknown variant {variant!r}")


def lora_params_by_module(facts, r: int) -> dict[str, tuple[int, int]]:
    """(lora_A, lora_B) parameter counts of each adapted module: r·in and out·r."""
    return {name: (r * facts.quantized[name][0], r * facts.quantized[name][1]) for name in facts.lora_modules}


def executed_flops_per_token(facts, seq_len: int, variant: str, r: int = 0,
                             gradient_checkpointing: bool = False) -> int:
    """The matmul and attention FLOPs one training token really costs in this implementation, recomputation
    included: what FlopCounterMode counts (flop_count.py), to check the counter and the formulas against
    each other. Raises FormulaNotApplicable where executed_formula_caveats finds any.

    Beyond model_flops_per_token:
    - flash attention's backward recomputes the scores: backward attention is 10·L·H·Q·T, not 8;
    - QLoRA without gradient checkpointing: the embeddings are frozen, so the first layer's q/k/v inputs need
      no gradient (neither through the 4-bit weights nor through their lora_A);
    - gradient checkpointing recomputes each decoder layer's forward in the backward pass: QLoRA through peft's
      prepare_model_for_kbit_training (reentrant checkpoint: the whole layer, LoRA included; peft makes the
      embedding output require grad, so every layer's input gradient is computed); full fine-tuning through
      transformers' default (non-reentrant, which stops recomputing once the last saved tensor is rebuilt:
      down_proj's forward is skipped).
    """
    caveats = executed_formula_caveats(facts, seq_len)
    if caveats:
        raise FormulaNotApplicable("; ".join(caveats))
    layers = facts.layers()
    n = matmul_params(facts)
    projections = sum(facts.quantized_numels)
    attention = attention_flops_per_token(facts.config, seq_len)
    if variant == "full":
        flops = 6 * n + attention + (10 * attention) // 4
        if gradient_checkpointing:
            down = sum(i * o for layer in layers.values() for name, (i, o) in layer.items() if name == "down_proj")
            flops += 2 * (projections - down) + attention
        return flops
    if variant != "qlora":
        raise ValueError(f"unknown variant {variant!r}")
    per_module = lora_params_by_module(facts, r)  # lora_A of the first layer's inputs, below
    lora_params = facts.trainable_params  # the LoRA count: peft's, as anatomy.describe read it
    flops = 2 * n + 2 * n + 6 * lora_params + attention + (10 * attention) // 4
    if gradient_checkpointing:
        flops += 2 * projections + 2 * lora_params + attention
    else:
        from qrepro.model.anatomy import layer_index
        first = min(layers)
        first_inputs = [name for name in facts.quantized if layer_index(name) == first
                        and name.rsplit(".", 1)[-1] in FIRST_LAYER_INPUTS]
        flops -= sum(2 * facts.quantized[m][0] * facts.quantized[m][1] for m in first_inputs)
        flops -= sum(2 * per_module[m][0] for m in first_inputs if m in per_module)
    return flops
