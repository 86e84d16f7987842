"""Profile one training configuration: MFU of a full fine-tuning step and where its time goes.

    python3 bench/profile_step.py --hidden 128 --layers 4 --inter 384 --seq 128 --batch 2     # the default's shape
    python3 bench/profile_step.py --hidden 512 --layers 4 --inter 1408 --seq 256 --batch 8    # a ~15M model

Same model code and bf16 autocast as the pipeline; prints the analytic MFU against the measured bf16
matmul peak, and the torch.profiler split between matmul kernels and everything else.
"""
from __future__ import annotations

import argparse
import time

import torch

from qrepro.evaluation.device_peak import measure_matmul_peak
from qrepro.hardware import cpu_supports_bf16
from qrepro.model.analytic import model_flops_per_token
from qrepro.model.anatomy import describe
from qrepro.model.causal_lm import build_config, count_parameters, random_model


def main() -> None:
    parser = argparse.ArgumentParser()
    for name, default in (("hidden", 128), ("layers", 4), ("heads", 4), ("kv", 2), ("inter", 384), ("vocab", 2048),
                          ("seq", 128), ("batch", 2), ("steps", 20), ("threads", 1)):
        parser.add_argument(f"--{name}", type=int, default=default)
    parser.add_argument("--model-type", dest="model_type", default="llama", help="llama | qwen2 | mistral | phi3 | gemma")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    arch = dict(model_type=args.model_type, hidden_size=args.hidden, num_hidden_layers=args.layers, num_attention_heads=args.heads,
                num_key_value_heads=args.kv, intermediate_size=args.inter, max_position_embeddings=args.seq,
                tie_word_embeddings=False, rms_norm_eps=1e-5, rope_theta=1e4)
    config = build_config(arch, args.vocab, 1, 2)
    model = random_model(config, seed=0).train()
    total, _ = count_parameters(model)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    ids = torch.randint(3, args.vocab, (args.batch, args.seq))

    dtype = torch.bfloat16 if cpu_supports_bf16() else torch.float32  # bf16 only where the CPU does it natively

    def step():
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == torch.bfloat16):
            loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    for _ in range(3):
        step()
    start = time.perf_counter()
    for _ in range(args.steps):
        step()
    per_step = (time.perf_counter() - start) / args.steps
    flops = model_flops_per_token(describe(config), args.seq, "full") * args.batch * args.seq
    peak = measure_matmul_peak(dtype, args.threads)["best_flops"]
    print(f"{total / 1e6:.2f}M parameters, batch {args.batch} x seq {args.seq}: {per_step * 1e3:.1f} ms/step, "
          f"{args.batch * args.seq / per_step:.0f} tokens/s, MFU {100 * flops / per_step / peak:.1f}% "
          f"of {peak / 1e12:.2f} TFLOP/s ({dtype}, {args.threads} thread)")
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        for _ in range(5):
            step()
    events = prof.key_averages()
    total_self = sum(e.self_cpu_time_total for e in events)
    matmul = sum(e.self_cpu_time_total for e in events if e.key in ("aten::mm", "aten::addmm", "aten::bmm",
                                                                       "aten::_scaled_dot_product_flash_attention_for_cpu",
                                                                       "aten::_scaled_dot_product_flash_attention_for_cpu_backward"))
    print(f"profiler: matmul/attention kernels {100 * matmul / total_self:.0f}% of self CPU time; top ops:")
    print(events.table(sort_by="self_cpu_time_total", row_limit=8))


if __name__ == "__main__":
    main()
