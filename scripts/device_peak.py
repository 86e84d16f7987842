"""Rule device_peak: the peak FLOP/s that MFU divides by."""
import torch

from qrepro.evaluation.device_peak import cuda_peak, measure_matmul_peak
from qrepro.hardware import describe
from qrepro.metrics_io import write_metrics
from qrepro.model.quant import DTYPES
from qrepro.runlog import alone_evidence, log_to
from qrepro.training.trainer import device_and_precision

p = snakemake.params  # noqa: F821
job = snakemake  # noqa: F821
with log_to(job.log[0]):
    cuda, precision = device_and_precision(p.precision)
    details = {"precision": precision, "hardware": describe(), "cuda": cuda, "torch": torch.__version__}
    if cuda:
        details["gpu"] = torch.cuda.get_device_name()  # the paper-protocol MFU needs to know a T4
    if p.override:
        peak, source, timing = p.override, "evaluation.peak_flops in the config", False
    elif cuda:
        (peak, source), timing = cuda_peak(), False
    else:
        measured = measure_matmul_peak(DTYPES[precision], job.threads)
        peak, timing = measured["best_flops"], True
        source = (f"measured: the best of {measured['runs']} timed runs of four {measured['size']}x{measured['size']} "
                  f"{precision} matmuls on this CPU with {job.threads} thread(s), the training jobs' thread count "
                  "(a peak is the best rate reached, not a typical one)")
        details.update(measured)
        details.update(alone_evidence(job.threads, job.resources.scheduler_cores))
    write_metrics(p.metrics_dir, "device", {
        "peak_flops": dict(value=peak, unit="FLOP/s", inputs=[], timing=timing, method=f"Peak for MFU: {source}.",
                           details=details),
    })
