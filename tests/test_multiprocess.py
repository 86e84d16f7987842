"""Data-parallel training for real, on CPU: training.num_processes: 2 runs each fine-tuning job as two processes
(accelerate's launcher, torch.distributed with gloo), each accumulating half of an optimizer step's micro-batches,
so the global batch stays the recipe's."""
import shutil

import pandas as pd
import pytest

from conftest import snakemake
from qrepro.metrics_io import read_metric

# Within the first epoch both runs see the same micro-batches in each optimizer step; two processes average the
# gradients in another order than one process accumulating them, so the logged losses agree to float32 rounding
# (LoRA dropout also draws its masks per rank). After the first epoch the order differs: accelerate reshuffles a
# sharded epoch with seed + epoch, a single process continues its sampler's generator.
LOSS_TOLERANCE = {"full": 1e-5, "qlora": 1e-3}


@pytest.fixture(scope="module")
def two_process_run(test_run, tmp_path_factory):
    """The finished test run, trained again with two processes per job (only the training jobs rerun: a param
    changed)."""
    workdir = tmp_path_factory.mktemp("multiprocess") / "run"
    shutil.copytree(test_run, workdir, symlinks=True)
    (workdir / "two.yaml").write_text("training:\n  num_processes: 2\n")
    result = snakemake(workdir, "--configfile", "configs/test.yaml", "two.yaml", "--cores", "2", "train")
    return workdir, result


@pytest.mark.parametrize("variant", ["full", "qlora"])
def test_two_processes_follow_the_one_process_loss_curve(test_run, two_process_run, variant):
    workdir, _ = two_process_run
    one = pd.read_csv(test_run / f"results/train/{variant}/log_history.csv").dropna(subset=["loss"])
    two = pd.read_csv(workdir / f"results/train/{variant}/log_history.csv").dropna(subset=["loss"])
    assert list(two["step"]) == list(one["step"])
    print(f"{variant}: logged losses at steps {list(one['step'])} (epochs {one['epoch'].round(3).tolist()})\n"
          f"  1 process:   {one['loss'].round(6).tolist()}\n  2 processes: {two['loss'].round(6).tolist()}")
    first_epoch = (one["epoch"] <= 1.0).to_numpy()
    difference = abs(two["loss"].to_numpy() - one["loss"].to_numpy())[first_epoch]
    print(f"  largest difference in the first epoch: {difference.max():.2e} (tolerance {LOSS_TOLERANCE[variant]})")
    assert first_epoch.sum() >= 4 and difference.max() <= LOSS_TOLERANCE[variant]
    hyperparameters = read_json(workdir / f"results/train/{variant}/hyperparameters.json")
    single = read_json(test_run / f"results/train/{variant}/hyperparameters.json")
    assert hyperparameters["processes"] == 2 and single["processes"] == 1
    assert hyperparameters["global_batch"] == single["global_batch"]
    assert hyperparameters["gradient_accumulation_steps"] * 2 == single["gradient_accumulation_steps"]


@pytest.mark.parametrize("variant", ["full", "qlora"])
def test_metrics_are_written_once_and_cover_both_ranks(two_process_run, variant):
    workdir, _ = two_process_run
    logs = workdir / "results/logs"
    rank0, rank1 = (logs / f"finetune_{variant}.log.rank{r}" for r in (0, 1))
    assert rank0.read_text().count("wrote ") == 1 and "wrote " not in rank1.read_text()
    assert "wrote " not in (logs / f"finetune_{variant}.log").read_text()  # the launching process writes nothing
    time = read_metric(workdir / f"results/metrics/{variant}/train_time_s.json")
    processes = time["details"]["processes"]
    assert [p["rank"] for p in processes] == [0, 1]
    assert all(p["ran_alone"] and p["threads"] == 1 for p in processes)  # the job's 2 cores, one per process
    # each rank timed every optimizer step itself; the step time and the MFU divide by the global batch's work
    steps = read_metric(workdir / f"results/metrics/{variant}/train_steps.json")["value"]
    assert all(p["step_time"]["steps_recorded"] == steps for p in processes)
    memory = read_metric(workdir / f"results/metrics/{variant}/peak_train_memory_mb.json")
    assert memory["value"] == max(p["peak_memory_mb"] for p in processes)


def read_json(path):
    import json
    return json.loads(path.read_text())
