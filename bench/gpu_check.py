"""GPU check: a few training steps of each variant on the paper architecture with random weights.

    python3 bench/gpu_check.py --out gpu_check.json [--steps 10] [--configfile configs/paper.yaml]

Needs a CUDA GPU, no hub access: the architecture comes from the profile, the weights are random.
Writes time per step, tokens/s, MFU (analytic FLOPs against the GPU's spec-sheet peak) and peak GPU
memory (torch.cuda.max_memory_allocated) for each variant, each measured in its own process.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))


def profile(configfile: str) -> dict:
    import yaml
    from snakemake.utils import update_config
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    update_config(config, yaml.safe_load(Path(configfile).read_text()))
    return config


def one_variant(args) -> None:
    """Child process: one variant, so peak memory is its own."""
    import torch

    from qrepro.modeling import count_parameters
    from qrepro.peak import cuda_peak
    from qrepro.probe import run_probe
    from qrepro.structure import analytic_flops_per_token

    config = profile(args.configfile)
    hp = config["training"][args.variant]
    precision = config["training"]["precision"]
    seq_len = config["data"]["max_length"]
    result = run_probe(args.base, args.variant, hp, precision, True, args.steps, seq_len, config["seed"], args.work)
    from transformers import AutoConfig, AutoModelForCausalLM
    model_config = AutoConfig.from_pretrained(args.base)
    with torch.device("meta"):
        total, _ = count_parameters(AutoModelForCausalLM.from_config(model_config))
    from qrepro.modeling import expected_lora_params
    lora = hp["lora"] if args.variant == "qlora" else None
    lora_params = expected_lora_params(model_config, lora["target_modules"], lora["r"]) if lora else 0
    flops_per_token = analytic_flops_per_token(model_config, total, seq_len, args.variant, lora_params,
                                               hp["gradient_checkpointing"])
    peak, peak_source = cuda_peak()
    result.update({"gpu": torch.cuda.get_device_name(), "mfu_percent": 100 * flops_per_token * result["tokens_per_s"] / peak,
                   "peak_flops": peak, "peak_source": peak_source, "flops_per_token": flops_per_token})
    Path(args.result).write_text(json.dumps(result, indent=2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="gpu_check.json")
    parser.add_argument("--steps", type=int, default=10)
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
    from qrepro.base_model import random_weights

    config = profile(args.configfile)
    arch = config["model"]["architecture"]

    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "base"
        random_weights(arch, arch["vocab_size"], config["seed"]).to(torch.float16).save_pretrained(base, max_shard_size="100GB")
        for variant in ("full", "qlora"):
            out = Path(tmp) / f"{variant}.json"
            subprocess.run([sys.executable, __file__, "--configfile", args.configfile, "--steps", str(args.steps),
                            "--variant", variant, "--base", str(base), "--work", str(Path(tmp) / variant),
                            "--result", str(out)], check=True)
            results[variant] = json.loads(out.read_text())
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    for variant, r in results.items():
        print(f"{variant:6s} step {r['step_time_s']:.3f} s, {r['tokens_per_s']:.0f} tokens/s, "
              f"MFU {r['mfu_percent']:.1f}%, peak GPU memory {r['peak_memory_mb']:.0f} MB")


if __name__ == "__main__":
    main()
