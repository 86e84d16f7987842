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


# ---- the paper's protocol (PROTOCOL.md) ----

def paper_sizes_mb(total_params: int, trainable_params: int) -> dict:
    """Table 5 as the paper computed it: counts × bytes, ignoring 16-bit modules and quant constants."""
    fp16 = total_params * 2 / MB
    base = total_params * 0.5 / MB
    adapters = trainable_params * 2 / MB
    qlora_total = base + adapters
    return {"fp16": fp16, "base_4bit": base, "adapters": adapters, "qlora_total": qlora_total,
            "compression_ratio": fp16 / qlora_total, "reduction_percent": 100 * (1 - qlora_total / fp16)}


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
    from .modeling import linear_shapes
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


# ---- analytic FLOPs (PaLM appendix B style) ----

def matmul_params(config, total_params: int) -> int:
    """Parameters that take part in matmuls: everything but the input embedding (a lookup)."""
    return total_params - config.vocab_size * config.hidden_size


def analytic_flops_per_token(config, total_params: int, seq_len: int, variant: str,
                             lora_params: int = 0, gradient_checkpointing: bool = False) -> float:
    """Training FLOPs per token.

    full:  6N + 12·L·H·Q·T (forward 2N, backward 4N; attention scores and values 4·L·H·Q·T forward, ×3).
    qlora: forward 2N + activation-gradient backward 2N (frozen weights need no weight gradient)
           + LoRA 6·N_lora + attention 12·L·H·Q·T; recomputation adds another forward where
           gradient checkpointing is on.
    """
    n = matmul_params(config, total_params)
    head_dim = config.hidden_size // config.num_attention_heads
    attention_fwd = 4 * config.num_hidden_layers * config.num_attention_heads * head_dim * seq_len
    if variant == "full":
        flops = 6 * n + 3 * attention_fwd
        recompute = 2 * n + attention_fwd
    elif variant == "qlora":
        flops = 2 * n + 2 * n + 6 * lora_params + 3 * attention_fwd
        recompute = 2 * n + 2 * lora_params + attention_fwd
    else:
        raise ValueError(f"unknown variant {variant!r}")
    return flops + (recompute if gradient_checkpointing else 0)
