"""Linear probes over the activation store: compliance vs refusal (or harmful vs harmless), per layer and language,
with cross-lingual and base-to-fine-tuned transfer. Estimators follow the scikit-learn contract."""

from probes.data import ProbeData, probe_dataset, read_judgments
from probes.estimators import DiffMeanProbe, LogisticProbe, TorchLogisticProbe
from probes.io import load_probes, save_probes
from probes.newton import LogisticFit, fit_logistic_batched, solve_logistic
from probes.resample import bootstrap_auroc_ece
from probes.sweep import base_to_ft_transfer, control_labels, fit_layers_batched, layer_sweep, transfer_matrix

__all__ = [
    "DiffMeanProbe",
    "LogisticFit",
    "LogisticProbe",
    "ProbeData",
    "TorchLogisticProbe",
    "base_to_ft_transfer",
    "bootstrap_auroc_ece",
    "control_labels",
    "fit_layers_batched",
    "fit_logistic_batched",
    "layer_sweep",
    "load_probes",
    "probe_dataset",
    "read_judgments",
    "save_probes",
    "solve_logistic",
    "transfer_matrix",
]
