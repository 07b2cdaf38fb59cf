"""The course's four optimizer studies, run with the tinytorch package itself.

    from experiments import run_study
    record = run_study("momentum", ["iterations=100"], out_root=None)  # nothing saved
    record.result.summary, record.result.figures["momentum"]

Studies: optimizers, bias_correction, clipping, momentum (see STUDIES); each
has a YAML config in experiments/configs/ and a module of the same name whose
run(cfg, progress) does the work. From the shell: tito experiment run NAME.
"""

from .errors import ConfigError, DatasetError, ExperimentError
from .run import STUDIES, RunRecord, load_config, run_study

__all__ = [
    "STUDIES",
    "ConfigError",
    "DatasetError",
    "ExperimentError",
    "RunRecord",
    "load_config",
    "run_study",
]
