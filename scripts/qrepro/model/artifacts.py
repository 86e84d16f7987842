"""Checks of saved model files, without loading them (no torch): the manifest job and model loading both use them."""
from __future__ import annotations

import json
from pathlib import Path


class ArtifactError(ValueError):
    """A model artifact is missing or malformed."""


def check_adapter(adapter_dir: str) -> dict:
    folder = Path(adapter_dir)
    config_path, weights = folder / "adapter_config.json", folder / "adapter_model.safetensors"
    for path in (config_path, weights):
        if not path.exists():
            raise ArtifactError(f"adapter file {path} is missing")
    check_safetensors(weights)
    try:
        return json.loads(config_path.read_text())
    except json.JSONDecodeError as err:
        raise ArtifactError(f"adapter config {config_path} is not valid JSON: {err}") from err


def check_safetensors(path: Path) -> None:
    """The header must parse and its tensors must end exactly where the file ends."""
    try:
        with open(path, "rb") as handle:
            header_len = int.from_bytes(handle.read(8), "little")
            header = json.loads(handle.read(header_len))
        data_end = max((t["data_offsets"][1] for k, t in header.items() if k != "__metadata__"), default=0)
        expected = 8 + header_len + data_end
        actual = Path(path).stat().st_size
        if actual != expected:
            raise ValueError(f"{actual} bytes on disk, the header describes {expected}")
    except (OSError, ValueError, KeyError, TypeError, UnicodeDecodeError) as err:
        raise ArtifactError(f"safetensors file {path} is unreadable (truncated or corrupt): {err}") from err
