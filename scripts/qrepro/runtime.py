"""How a job sets up its process: threads, seeds, the device and precision, and the checkpoints it may resume.
Shared layer: pretraining (model), fine-tuning (training) and evaluation jobs all start here. torch is imported
inside the functions that need it, so the workflow can import this module while it parses."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

from qrepro.hardware import resolve_precision


def set_threads(threads: int) -> None:
    import torch

    torch.set_num_threads(max(1, threads))


def seed_everything(seed: int) -> None:
    from transformers import set_seed

    set_seed(seed, deterministic=True)


def device_and_precision(requested: str) -> tuple[bool, str]:
    """Whether CUDA is used, and the precision that will really run (hardware.resolve_precision)."""
    import torch

    cuda = torch.cuda.is_available()
    return cuda, resolve_precision(requested, cuda)


def latest_checkpoint(output_dir: str | os.PathLike, last_file: str = "trainer_state.json") -> str | None:
    """The newest checkpoint whose last-written file exists: one a killed process left half written is skipped."""
    checkpoints = sorted(Path(output_dir).glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
    complete = [c for c in checkpoints if (c / "trainer_state.json").exists() and (c / last_file).exists()]
    return str(complete[-1]) if complete else None


def fingerprint(settings: dict, paths: list[str]) -> str:
    """SHA-256 over the job's settings and the bytes of its input files."""
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode())
    for root in sorted(paths):
        files = [Path(root)] if Path(root).is_file() else sorted(f for f in Path(root).rglob("*") if f.is_file())
        for f in files:
            digest.update(str(f.relative_to(root) if f != Path(root) else f.name).encode())
            with open(f, "rb") as handle:
                for chunk in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(chunk)
    return digest.hexdigest()


def claim_checkpoint_dir(checkpoint_dir: str, job_fingerprint: str) -> None:
    """Checkpoints are only resumed by the job that wrote them: same settings, same input bytes.
    A folder left by other settings or inputs is wiped, never resumed."""
    folder = Path(checkpoint_dir)
    stamp = folder / "fingerprint.txt"
    if folder.exists() and (not stamp.exists() or stamp.read_text().strip() != job_fingerprint):
        shutil.rmtree(folder)
    folder.mkdir(parents=True, exist_ok=True)
    stamp.write_text(job_fingerprint + "\n")
