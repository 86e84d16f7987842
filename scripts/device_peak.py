"""Rule device_peak: the peak FLOP/s that MFU divides by."""
import torch

from qrepro.hardware import describe
from qrepro.metrics_io import write_metrics
from qrepro.peak import cuda_peak, measure_matmul_peak
from qrepro.quant import DTYPES
from qrepro.runlog import log_to
from qrepro.training import device_and_precision

p = snakemake.params  # noqa: F821
with log_to(snakemake.log[0]):  # noqa: F821
    cuda, precision = device_and_precision(p.precision)
    if p.override:
        peak, source, timing = p.override, "evaluation.peak_flops in the config", False
    elif cuda:
        (peak, source), timing = cuda_peak(), False
    else:
        dtype = DTYPES[precision]
        peak = measure_matmul_peak(dtype, snakemake.threads)  # noqa: F821
        source, timing = (f"measured: best {precision} 2048x2048 matmul rate on this CPU with "
                          f"{snakemake.threads} thread(s), the training jobs' thread count"), True  # noqa: F821
    write_metrics(p.metrics_dir, "device", {
        "peak_flops": dict(value=peak, unit="FLOP/s", inputs=[], timing=timing, method=f"Peak for MFU: {source}.",
                           details={"precision": precision, "hardware": describe(), "cuda": cuda,
                                    "torch": torch.__version__}),
    })
