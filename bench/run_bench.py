"""Benchmark harness: runs the default pipeline from a clean copy and prints every figure beside its target.

    python3 bench/run_bench.py            # writes results/bench/*.json and prints the summary table

Not part of the test suite: nothing here passes or fails, it measures.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def copy_workflow(dest: Path) -> Path:
    """What a clean checkout of the working tree holds: tracked and untracked-but-not-ignored files."""
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, check=True,
                            capture_output=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        if (ROOT / name).is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, dest / name)
    return dest


def run(workdir: Path, *args: str) -> float:
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "snakemake", *args], cwd=workdir, env=env, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def stage_times(workdir: Path) -> dict[str, float]:
    times = {}
    for tsv in sorted((workdir / "results/benchmarks").glob("*.tsv")):
        with open(tsv) as handle:
            times[tsv.stem] = float(next(csv.DictReader(handle, delimiter="\t"))["s"])
    return times


def metric(workdir: Path, scope: str, name: str):
    return json.loads((workdir / f"results/metrics/{scope}/{name}.json").read_text())["value"]


def bootstrap_cost(units: int = 5000, replicates: int = 2000, models: int = 3) -> dict:
    """Seconds for the paired test-set bootstrap at a WikiText-2-like size: one resample matrix, every model's
    perplexity recomputed on it (qrepro.uncertainty, as the perplexity and comparisons jobs do)."""
    import numpy as np

    from qrepro import uncertainty

    rng = np.random.default_rng(0)
    audits = [(rng.gamma(4, 30, units), rng.integers(200, 512, units)) for _ in range(models)]
    start = time.perf_counter()
    indices = uncertainty.resample_indices(units, replicates, seed=0)
    replicated = [uncertainty.perplexity_replicates(nll, tokens, indices) for nll, tokens in audits]
    uncertainty.percentile_interval(100 * (replicated[1] / replicated[0] - 1), 0.95)
    return {"units": units, "replicates": replicates, "models": models, "seconds": time.perf_counter() - start}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--keep", action="store_true", help="keep the temporary run folder")
    parser.add_argument("--configfile", action="append", default=[], help="extra profile(s) on top of config.yaml")
    parser.add_argument("--packing", action="store_true",
                        help="also train with data.packing: true and report what packing changes")
    parser.add_argument("--seeds", action="store_true",
                        help="also time the test profile from clean copies with one training seed and with the three "
                             "of configs/seeds.yaml (snakemake html)")
    parser.add_argument("--tests", action="store_true",
                        help="also time the README's test command (target: 12 minutes)")
    args = parser.parse_args()
    from qrepro.hardware import describe

    tmp = Path(tempfile.mkdtemp(prefix="qrepro-bench-"))
    workdir = copy_workflow(tmp / "run")
    extra = [a for f in args.configfile for a in ("--configfile", str(Path(f).resolve()))]
    clean = run(workdir, "--cores", str(args.cores), *extra, "report")
    noop = min(run(workdir, "--cores", "1", *extra, "report") for _ in range(3))
    with open(workdir / "templates/report.tex.j2", "a") as handle:  # an edit, not a touch: Snakemake skips
        handle.write("%# edited by the benchmark\n")           # reruns whose input content is unchanged
    template = run(workdir, "--cores", "1", *extra, "report")

    peak = metric(workdir, "device", "peak_flops")
    training = {}
    for variant in ("full", "qlora"):
        hp = json.loads((workdir / f"results/train/{variant}/hyperparameters.json").read_text())
        stats = json.loads((workdir / "results/data/split_stats.json").read_text())["splits"]["train"]
        seq = stats["tokens_with_padding"] // stats["samples"]
        tokens = hp["per_device_train_batch_size"] * hp["gradient_accumulation_steps"] * seq
        step = metric(workdir, variant, "step_time_s")
        training[variant] = {"tokens_per_s": tokens / step, "real_tokens_per_s": tokens / step * stats["tokens"] /
                             stats["tokens_with_padding"], "mfu_percent": metric(workdir, variant, "mfu_analytic"),
                             "step_time_s": step, "train_time_s": metric(workdir, variant, "train_time_s"),
                             "precision": hp["precision"]}
    comparisons = {name: metric(workdir, "comparison", name) for name in (
        "training_slowdown_percent_total", "training_slowdown_percent_per_step", "inference_slowdown_x",
        "inference_slowdown_merged_x", "flops_counted_over_executed_full", "flops_counted_over_executed_qlora")}
    inference = {v: metric(workdir, v, "tokens_per_s") for v in ("full", "qlora", "qlora_merged")}
    # the stand-in base must be good enough that fine-tuning lowers test perplexity clearly
    perplexity = {m: metric(workdir, m, "perplexity_token") for m in ("base", "full", "qlora")}
    packing = None
    if args.packing:
        packed = copy_workflow(tmp / "packed")
        (packed / "packing.yaml").write_text("data:\n  packing: true\n")
        run(packed, "train", "results/metrics/dataset/train_padding_efficiency.json", "--cores", str(args.cores),
            "--configfile", *[a for a in extra if a != "--configfile"], "packing.yaml")
        packing = {v: {"train_time_s": metric(packed, v, "train_time_s"),
                       "train_loss_final": metric(packed, v, "train_loss_final"),
                       "padded_train_time_s": metric(workdir, v, "train_time_s"),
                       "padded_train_loss_final": metric(workdir, v, "train_loss_final")} for v in ("full", "qlora")}
        packing["padding_efficiency"] = {"padded": metric(workdir, "dataset", "train_padding_efficiency"),
                                         "packed": metric(packed, "dataset", "train_padding_efficiency")}
    seeds = None
    if args.seeds:  # the whole test-profile DAG, clean, one seed then three (the seeds' training jobs one at a time)
        seeds = {}
        for label, overlays in (("one_seed", ["configs/test.yaml"]), ("three_seeds", ["configs/test.yaml",
                                                                                         "configs/seeds.yaml"])):
            copy = copy_workflow(tmp / label)
            seeds[label] = {"clean_html_s": run(copy, "html", "--cores", str(args.cores), "--configfile", *overlays),
                            "finetune_s": {k: v for k, v in stage_times(copy).items() if k.startswith("finetune")}}
    bootstrap = bootstrap_cost()
    tests = None
    if args.tests:  # the README's test command, as CI runs it (the tests copy the workflow where they run it)
        start = time.perf_counter()
        outcome = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"], cwd=ROOT,
                                 capture_output=True, text=True, env=dict(os.environ, HF_HUB_OFFLINE="1"))
        tests = {"seconds": time.perf_counter() - start, "returncode": outcome.returncode,
                 "summary": outcome.stdout.strip().splitlines()[-1] if outcome.stdout.strip() else ""}
    results = {"machine": describe(), "cores": args.cores, "clean_run_s": clean, "stages_s": stage_times(workdir),
               "noop_s": noop, "template_edit_to_pdf_s": template, "peak_flops": peak, "training": training,
               "inference_tokens_per_s": inference, "perplexity_token": perplexity, "comparisons": comparisons,
               "packing": packing, "seeds": seeds, "bootstrap": bootstrap, "tests": tests}
    out = ROOT / "results/bench"
    out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%S")
    for name, payload in (("latest", results), (stamp, results)):
        (out / f"{name}.json").write_text(json.dumps(results, indent=2) + "\n")

    targets = [
        ("clean pipeline, report included (s)", clean, "<= 480", clean <= 480),
        ("full fine-tuning MFU, model FLOPs / median step (%)", training["full"]["mfu_percent"], ">= 30",
         training["full"]["mfu_percent"] >= 30),
        ("no-op `snakemake --cores 1 report` (s)", noop, "<= 3", noop <= 3),
        ("template touch to new PDF (s)", template, "<= 30", template <= 30),
        ("qlora_merged / full inference tokens/s", inference["qlora_merged"] / inference["full"], ">= 0.95",
         inference["qlora_merged"] / inference["full"] >= 0.95),
    ]
    print(f"machine: {results['machine'].get('cpu_model')} ({results['machine']['cpu_count']} cores, bf16 support: "
          f"{results['machine']['cpu_bf16']}), the run's measured peak {peak / 1e12:.3f} TFLOP/s")
    print(f"{'figure':45s} {'measured':>10s} {'target':>9s}  met")
    for label, value, target, met in targets:
        print(f"{label:45s} {value:10.2f} {target:>9s}  {'yes' if met else 'NO'}")
    print("\nper stage (s, Snakemake benchmark files):")
    for stage, seconds in results["stages_s"].items():
        print(f"  {stage:30s} {seconds:8.1f}")
    print("\ntraining throughput:")
    for variant, t in training.items():
        print(f"  {variant:6s} {t['tokens_per_s']:9.0f} tokens/s ({t['real_tokens_per_s']:.0f} non-padding), median step "
              f"{t['step_time_s']:.4f} s, total {t['train_time_s']:.1f} s, MFU {t['mfu_percent']:.1f}% ({t['precision']})")
    print("inference tokens/s: " + ", ".join(f"{k} {v:.1f}" for k, v in inference.items()))
    print("token-level test perplexity: " + ", ".join(
        f"{m} {v:.1f}" + ("" if m == "base" else f" ({100 * (v / perplexity['base'] - 1):+.0f}% vs base)")
        for m, v in perplexity.items()))
    print("comparisons: " + ", ".join(f"{k} {v:.3f}" for k, v in comparisons.items()))
    if packing:
        eff = packing["padding_efficiency"]
        print(f"packing: text fraction of processed tokens {eff['padded']:.1%} (padded) -> {eff['packed']:.1%} (packed)")
        for v in ("full", "qlora"):
            print(f"  {v:6s} train time {packing[v]['padded_train_time_s']:.0f} s -> {packing[v]['train_time_s']:.0f} s "
                  f"for the same 500 steps (each step then holds only text)")
    print(f"paired test-set bootstrap: {bootstrap['replicates']} resamples of {bootstrap['units']:,} units, "
          f"{bootstrap['models']} models: {bootstrap['seconds']:.2f} s")
    if seeds:
        one, three = seeds["one_seed"], seeds["three_seeds"]
        print(f"test profile, clean `snakemake html`: one seed {one['clean_html_s']:.0f} s, three seeds "
              f"(configs/seeds.yaml) {three['clean_html_s']:.0f} s; training jobs "
              f"{sum(one['finetune_s'].values()):.0f} s -> {sum(three['finetune_s'].values()):.0f} s "
              f"({len(three['finetune_s'])} runs)")
    if tests:
        print(f"README test command: {tests['seconds']:.0f} s (target <= 720), {tests['summary']}")
    print(f"\nwritten: {out / 'latest.json'}")
    if not args.keep:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
