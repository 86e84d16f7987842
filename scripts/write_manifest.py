"""Rule manifest: SHA-256 of every result file the report reads, checked again when it is rendered."""
import json
from pathlib import Path

from qrepro.metrics_io import read_metric, sha256
from qrepro.model.artifacts import check_adapter, check_safetensors
from qrepro.runlog import log_to

inp, out = snakemake.input, snakemake.output  # noqa: F821
with log_to(snakemake.log[0]):  # noqa: F821
    for path in [*inp.metrics, *inp.probe, *(f for f in inp.reference if "/metrics/" in f),
                 *(f for f in inp.sweeps if f.endswith(".json"))]:
        read_metric(path)  # a truncated or malformed metric file stops here, named
    # the model files are declared inputs (params.deleted_weights only makes a deleted one re-run the training)
    for path in inp:
        if path.endswith("adapter_config.json"):
            check_adapter(str(Path(path).parent))  # adapter config and weights must both be readable
        elif path.endswith(".safetensors"):
            check_safetensors(Path(path))
    files = sorted(set(map(str, inp.metrics)) | set(map(str, inp.probe)) | set(map(str, inp.reference))
                   | set(map(str, inp.others)) | set(map(str, inp.sweeps)))
    with open(out.manifest, "w") as handle:
        json.dump({"sha256": {path: sha256(path) for path in files}}, handle, indent=2, sort_keys=True)
