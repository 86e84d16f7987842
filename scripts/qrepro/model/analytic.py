"""Numbers that depend only on the architecture: the paper's size and FLOP formulas, the real
bitsandbytes NF4 footprint, and the PaLM-style analytic FLOPs. Pure arithmetic, no weights.

MB means 1024² bytes throughout, as in the paper.
"""
from __future__ import annotations

MB = 1024 ** 2
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


def linear_weights(config) -> list[int]:
    """numel of each decoder-layer projection (the ones bitsandbytes quantizes)."""
    from qrepro.model.llama import linear_shapes
    shapes = linear_shapes(config)
    return [i * o for _ in range(config.num_hidden_layers) for i, o in shapes.values()]


def bnb_footprint_bytes(config, total_params: int, double_quant: bool, dtype_bytes: int = 2) -> dict:
    """The real in-memory size of a 4-bit model: quantized projections + everything else in 16 bit
    (embeddings, lm_head, norms stay 16-bit under bitsandbytes)."""
    linear = linear_weights(config)
    quantized = sum(quantized_linear_bytes(n, double_quant) for n in linear)
    unquantized = (total_params - sum(linear)) * dtype_bytes
    return {"quantized_bytes": quantized, "unquantized_bytes": unquantized, "total_bytes": quantized + unquantized,
            "quantized_params": sum(linear), "unquantized_params": total_params - sum(linear)}


# ---- analytic FLOPs ----

def matmul_params(config) -> int:
    """Weights that take part in matmuls: every decoder projection plus the output head (the input embedding
    is a lookup; norms are elementwise)."""
    return sum(linear_weights(config)) + config.vocab_size * config.hidden_size


def attention_flops_per_token(config, seq_len: int) -> int:
    """Forward attention per token, 4·L·H·Q·T: QK^T and AV over T positions, H query heads of size Q
    (causality ignored, as PaLM and torch's FLOP counter do)."""
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    return 4 * config.num_hidden_layers * config.num_attention_heads * head_dim * seq_len


def model_flops_per_token(config, seq_len: int, variant: str, lora_params: int = 0) -> int:
    """Model FLOPs per training token (PaLM appendix B), the numerator of MFU: no recomputation of any kind.

    full:  6N + 12·L·H·Q·T (forward 2N, backward 4N; attention 4·L·H·Q·T forward, twice that backward).
    qlora: 2N forward + 2N activation gradients (frozen weights need no weight gradient) + 6·N_lora
           + 12·L·H·Q·T.
    N = matmul_params (decoder projections + output head).
    """
    n = matmul_params(config)
    attention = 3 * attention_flops_per_token(config, seq_len)
    if variant == "full":
        return 6 * n + attention
    if variant == "qlora":
        return 4 * n + 6 * lora_params + attention
    raise ValueError(f"unknown variant {variant!r}")


def lora_params_by_layer_module(config, target_modules, r: int) -> dict[str, tuple[int, int]]:
    """(lora_A, lora_B) parameter counts of one layer's targeted projection: r·in and out·r."""
    from qrepro.model.llama import linear_shapes
    shapes = linear_shapes(config)
    return {m: (r * shapes[m][0], r * shapes[m][1]) for m in target_modules}


def executed_flops_per_token(config, seq_len: int, variant: str, lora: dict | None = None,
                             gradient_checkpointing: bool = False) -> int:
    """The matmul and attention FLOPs one training token really costs in this implementation, recomputation
    included: what FlopCounterMode counts (flop_count.py), to check the counter and the formulas against
    each other.

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
    from qrepro.model.llama import linear_shapes
    shapes = linear_shapes(config)
    n = matmul_params(config)
    projections = sum(linear_weights(config))
    attention = attention_flops_per_token(config, seq_len)
    if variant == "full":
        flops = 6 * n + attention + (10 * attention) // 4
        if gradient_checkpointing:
            down = config.num_hidden_layers * shapes["down_proj"][0] * shapes["down_proj"][1]
            flops += 2 * (projections - down) + attention
        return flops
    if variant != "qlora":
        raise ValueError(f"unknown variant {variant!r}")
    per_module = lora_params_by_layer_module(config, lora["target_modules"], lora["r"])
    lora_params = config.num_hidden_layers * sum(a + b for a, b in per_module.values())
    flops = 2 * n + 2 * n + 6 * lora_params + attention + (10 * attention) // 4
    if gradient_checkpointing:
        flops += 2 * projections + 2 * lora_params + attention
    else:
        first_layer_inputs = [m for m in ("q_proj", "k_proj", "v_proj")]
        flops -= sum(2 * shapes[m][0] * shapes[m][1] for m in first_layer_inputs)
        flops -= sum(2 * per_module[m][0] for m in first_layer_inputs if m in per_module)
    return flops
