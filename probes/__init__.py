"""Linear probes over the activation store: compliance vs refusal (or harmful vs harmless), per layer and language,
with cross-lingual and base-to-fine-tuned transfer. Estimators follow the scikit-learn contract."""

from probes.data import ProbeData, probe_dataset, read_judgments
from probes.estimators import DiffMeanProbe, LogisticProbe, TorchLogisticProbe, fit_logistic_batched
from probes.io import load_probes, save_probes
from probes.sweep import base_to_ft_transfer, control_labels, fit_layers_batched, layer_sweep, transfer_matrix

__all__ = [
    "DiffMeanProbe",
    "LogisticProbe",
    "ProbeData",
    "TorchLogisticProbe",
    "base_to_ft_transfer",
    "control_labels",
    "fit_layers_batched",
    "fit_logistic_batched",
    "layer_sweep",
    "load_probes",
    "probe_dataset",
    "read_judgments",
    "save_probes",
    "transfer_matrix",
]
