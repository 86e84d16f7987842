"""A GPU reference run, committed under reference/<gpu>-<profile>/: its metric files, manifest and job times,
and where it came from (command, commit, GPU, driver, package versions)."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

from qrepro.metrics_io import read_metric
from qrepro.runlog import nvidia_smi, package_versions


def write_reference(dest: str, metric_files: list[str], manifest: str, benchmarks_dir: str, origin: dict) -> None:
    """Copy a finished GPU run into dest; refuse a run that did not measure on a GPU."""
    device = read_metric(next(f for f in metric_files if f.endswith("device/peak_flops.json")))["details"]
    if not device.get("cuda"):
        raise RuntimeError("a reference run is a GPU run: results/metrics/device/peak_flops.json says this run did not "
                           "use CUDA. Run the GPU profile on a CUDA machine (README, 'Reproducing the paper on a GPU').")
    folder = Path(dest)
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    for path in metric_files:
        target = tmp / "metrics" / Path(path).parent.name / Path(path).name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
    shutil.copy2(manifest, tmp / "manifest.json")
    shutil.copytree(benchmarks_dir, tmp / "benchmarks")
    provenance = {**origin, "gpu": device.get("gpu") or nvidia_smi("name") or "unknown",
                  "driver": nvidia_smi("driver_version") or "unknown",
                  "packages": package_versions()}
    (tmp / "provenance.json").write_text(json.dumps(provenance, indent=2, sort_keys=True) + "\n")
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)
