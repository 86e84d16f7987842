"""GPU check: a few training steps of each variant on the paper architecture with random weights.

    python3 bench/gpu_check.py --out gpu_check.json [--steps 20] [--warmup 5] [--configfile configs/paper.yaml]

Needs a CUDA GPU, no hub access: the architecture comes from the profile, the weights are random.
Writes the median step time after the warm-up steps and its spread (10th/90th percentile, min, max),
tokens/s, MFU (model FLOPs over the median step against the GPU's spec-sheet peak) and peak GPU memory
(torch.cuda.max_memory_allocated) for each variant, each measured in its own process.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def profile(configfile: str) -> dict:
    from qrepro.config_checks import merged_profile
    return merged_profile(ROOT / "config.yaml", configfile)


def one_variant(args) -> None:
    """Child process: one variant, so peak memory is its own."""
    import torch

    from qrepro.evaluation.device_peak import cuda_peak
    from qrepro.model.analytic import model_flops_per_token
    from qrepro.model.anatomy import describe
    from qrepro.training.probe import run_probe

    config = profile(args.configfile)
    hp = config["training"][args.variant]
    precision = config["training"]["precision"]
    seq_len = config["data"]["max_length"]
    result = run_probe(args.base, args.variant, hp, precision, True, args.steps, args.warmup, seq_len, config["seed"],
                       args.work)
    lora = hp["lora"] if args.variant == "qlora" else None
    flops_per_token = model_flops_per_token(describe(args.base, lora), seq_len, args.variant)
    peak, accelerator, gpu = cuda_peak()
    peak_source = f"spec-sheet dense fp16/bf16 peak of {accelerator} ({gpu})"
    result.update({"gpu": torch.cuda.get_device_name(), "mfu_percent": 100 * flops_per_token * result["tokens_per_s"] / peak,
                   "peak_flops": peak, "peak_source": peak_source, "flops_per_token": flops_per_token})
    Path(args.result).write_text(json.dumps(result, indent=2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="gpu_check.json")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=5, help="first steps left out of the median")
    parser.add_argument("--configfile", default=str(ROOT / "configs/paper.yaml"))
    parser.add_argument("--variant", help=argparse.SUPPRESS)
    parser.add_argument("--base", help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.variant:
        return one_variant(args)

    import torch
    if not torch.cuda.is_available():
        sys.exit("bench/gpu_check.py needs a CUDA GPU (torch.cuda.is_available() is False).")
    from qrepro.model.base import random_weights

    config = profile(args.configfile)
    arch = config["model"]["architecture"]

    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "base"
        random_weights(arch, arch["vocab_size"], config["seed"]).to(torch.float16).save_pretrained(base, max_shard_size="100GB")
        for variant in ("full", "qlora"):
            out = Path(tmp) / f"{variant}.json"
            subprocess.run([sys.executable, __file__, "--configfile", args.configfile, "--steps", str(args.steps),
                            "--warmup", str(args.warmup),
                            "--variant", variant, "--base", str(base), "--work", str(Path(tmp) / variant),
                            "--result", str(out)], check=True)
            results[variant] = json.loads(out.read_text())
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    for variant, r in results.items():
        spread = r["step_time"]
        print(f"{variant:6s} median step {r['step_time_s']:.3f} s (p10 {spread['p10_s']:.3f}, p90 {spread['p90_s']:.3f}, "
              f"{spread['steps_timed']} steps after {spread['warmup_steps_excluded']} warm-up), "
              f"{r['tokens_per_s']:.0f} tokens/s, MFU {r['mfu_percent']:.1f}%, peak GPU memory {r['peak_memory_mb']:.0f} MB")


if __name__ == "__main__":
    main()
