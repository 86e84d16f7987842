"""Rule device_peak: the peak FLOP/s that MFU divides by."""
import torch

from qrepro.evaluation.device_peak import cuda_peak, measure_matmul_peak
from qrepro.hardware import describe
from qrepro.machine_load import MachineLoad, redo_while_loaded
from qrepro.metrics_io import write_metrics
from qrepro.model.quant import DTYPES
from qrepro.runlog import alone_evidence, log_to
from qrepro.runtime import device_and_precision

p = snakemake.params  # noqa: F821
job = snakemake  # noqa: F821
with log_to(job.log[0]):
    cuda, precision = device_and_precision(p.precision)
    details = {"precision": precision, "hardware": describe(), "cuda": cuda, "torch": torch.__version__}
    if cuda:
        details["gpu"] = torch.cuda.get_device_name()  # the paper-protocol MFU needs to know a T4
    if p.override:
        peak, fields = p.override, {"source": "override"}
    elif cuda:
        peak, accelerator, gpu = cuda_peak()
        fields = {"source": "cuda", "accelerator": accelerator, "gpu": gpu}
    else:
        def measure(attempt):
            """One timed measurement and the machine's load meanwhile (redo_while_loaded's work)."""
            with MachineLoad() as load:
                result = measure_matmul_peak(DTYPES[precision], job.threads)
            observed = load.report(p.timing["outside_load_cores"])
            return (result, observed), observed, {"best_flops": result["best_flops"]}

        (measured, observed), reruns = redo_while_loaded(measure, p.timing)
        peak = measured["best_flops"]
        contaminated = reruns["contaminated"]
        fields = {"source": "measured", "runs": measured["runs"], "size": measured["size"], "precision": precision,
                  "threads": job.threads, "attempts": len(reruns["attempts"]), "training": False,
                  "reruns_allowed": reruns["reruns_allowed"], "threshold": p.timing["outside_load_cores"],
                  "contaminated": contaminated}
        details.update(measured)
        details.update(alone_evidence(job.threads, job.resources.scheduler_cores))
        details["observed_load"] = observed
        details.update(reruns)
        fields.update(outside_load=observed["outside_load_observed"], outside_cores=observed["outside_cores_mean"])
    write_metrics(p.metrics, {"peak_flops": dict(value=peak, inputs=[], method_fields=fields, details=details,
                                                 contaminated=fields.get("contaminated", False))})
