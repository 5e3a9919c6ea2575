"""Probe sweeps over layers and languages with grouped cross-validation, transfer matrices and controls.

Every function returns long-form records (``site``, ``layer``, ``position``, ``lang``, ``metric``, ``value``, ``n``,
``ci_low``, ``ci_high``, plus ``train_lang``/``test_lang`` for transfer), like the drift metrics.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import clone
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import GroupKFold

from drift.errors import DriftError
from probes.data import ProbeData, probe_dataset
from probes.estimators import DiffMeanProbe, LogisticProbe, TorchLogisticProbe
from probes.newton import fit_logistic_batched
from probes.resample import bootstrap_auroc_ece

PROBES = {"logistic": LogisticProbe, "diffmean": DiffMeanProbe, "torch": TorchLogisticProbe}
Z95 = 1.959963984540054


def make_probe(kind: str):
    """A fresh probe of ``kind`` (logistic, diffmean or torch)."""
    if kind not in PROBES:
        raise DriftError(f"unknown probe {kind!r}: choose {', '.join(PROBES)}")
    return PROBES[kind]()


def wilson(k: float, n: int) -> tuple[float, float]:
    """95% Wilson interval for k successes in n trials."""
    if n == 0:
        return float("nan"), float("nan")
    p = k / n
    den = 1 + Z95**2 / n
    mid = (p + Z95**2 / (2 * n)) / den
    half = Z95 * np.sqrt(p * (1 - p) / n + Z95**2 / (4 * n * n)) / den
    return float(mid - half), float(mid + half)


def expected_calibration_error(y: np.ndarray, p: np.ndarray, bins: int = 10) -> float:
    """ECE of predicted probabilities ``p`` for the positive class."""
    edges = np.linspace(0, 1, bins + 1)
    idx = np.clip(np.digitize(p, edges[1:-1]), 0, bins - 1)
    return float(sum(abs(p[idx == b].mean() - y[idx == b].mean()) * (idx == b).mean() for b in range(bins)
                     if (idx == b).any()))


def _folds(data: ProbeData, n_folds: int) -> list[tuple[np.ndarray, np.ndarray]]:
    k = min(n_folds, len(np.unique(data.groups)))
    if k < 2:
        raise DriftError("cross-validation needs at least 2 prompt groups")
    return list(GroupKFold(k).split(data.X, data.y, data.groups))


def out_of_fold(data: ProbeData, probe, n_folds: int = 5) -> np.ndarray:
    """Out-of-fold probability of class 1 for every row, with folds grouped by prompt group."""
    p = np.full(len(data.y), np.nan)
    for tr, te in _folds(data, n_folds):
        if len(np.unique(data.y[tr])) < 2:
            continue
        model = clone(probe)
        model.fit(data.X[tr], data.y[tr], **({"groups": data.groups[tr]} if isinstance(model, LogisticProbe) else {}))
        p[te] = model.predict_proba(data.X[te])[:, 1]
    return p


def batched_out_of_fold(data: ProbeData, labels: list[np.ndarray], probe: TorchLogisticProbe,
                        n_folds: int = 5) -> list[np.ndarray]:
    """:func:`out_of_fold` for several 0/1 label vectors on the same rows, in one batched solve.

    Every (label vector, fold) pair is one problem of :func:`probes.newton.fit_logistic_batched` over the shared X (a
    zero-stride view, not a copy), its held-out rows given weight 0, with the probe's ``C``, ``max_iter``, ``tol``,
    ``device`` and ``dtype``. Folds whose training rows hold one class only are left as NaN, as in
    :func:`out_of_fold`.
    """
    import torch

    folds = _folds(data, n_folds)
    out = [np.full(len(data.y), np.nan) for _ in labels]
    jobs = [(i, tr, te) for i, y in enumerate(labels) for tr, te in folds if len(np.unique(y[tr])) == 2]
    if not jobs:
        return out
    dtype = getattr(torch, probe.dtype)
    X = torch.as_tensor(np.ascontiguousarray(data.X, dtype=np.float32 if dtype == torch.float32 else np.float64))
    X = X.to(probe.device or "cpu")
    weight = np.zeros((len(jobs), len(data.y)))
    for k, (_, tr, _) in enumerate(jobs):
        weight[k, tr] = 1.0
    y = np.stack([np.asarray(labels[i], dtype=np.float64) for i, _, _ in jobs])
    coef, intercept = fit_logistic_batched(X.expand(len(jobs), *X.shape), y, probe.C, max_iter=probe.max_iter,
                                           device=probe.device, tol=probe.tol, sample_weight=weight, dtype=dtype)
    for k, (i, _, te) in enumerate(jobs):
        z = np.asarray(data.X[te], dtype=np.float64) @ coef[k].astype(np.float64) + float(intercept[k])
        out[i][te] = 1.0 / (1.0 + np.exp(-np.clip(z, -500, 500)))
    return out


def score_records(y: np.ndarray, p: np.ndarray, langs: np.ndarray, base: dict, groups: np.ndarray | None = None,
                  n_boot: int = 1000, seed: int = 0) -> list[dict]:
    """Accuracy (Wilson CI), AUROC and ECE (bootstrap CIs over prompt groups) per language and pooled.

    Args:
        y: (n,) 0/1 labels.
        p: (n,) out-of-fold probability of class 1 (NaN rows are left out).
        langs: (n,) languages.
        base: Fields copied into every record.
        groups: (n,) prompt groups resampled whole by the bootstrap (default: every row its own group).
        n_boot: Bootstrap replicates for the AUROC and ECE intervals (0: no intervals, NaN bounds).
        seed: Bootstrap seed.
    """
    out = []
    ok = ~np.isnan(p)
    groups = np.arange(len(y)) if groups is None else np.asarray(groups)
    for lang in ["all", *sorted(np.unique(langs))]:
        m = ok & ((langs == lang) if lang != "all" else True)
        n = int(m.sum())
        if n == 0:
            continue
        correct = float(((p[m] > 0.5) == (y[m] == 1)).sum())
        lo, hi = wilson(correct, n)
        out.append({**base, "lang": lang, "metric": "accuracy", "value": correct / n, "n": n, "ci_low": lo,
                    "ci_high": hi})
        nan = (np.nan, np.nan)
        ci = bootstrap_auroc_ece(y[m], p[m], groups[m], n_boot, seed) if n_boot else {"auroc": nan, "ece": nan}
        if len(np.unique(y[m])) == 2:
            out.append({**base, "lang": lang, "metric": "auroc", "value": float(roc_auc_score(y[m], p[m])), "n": n,
                        "ci_low": ci["auroc"][0], "ci_high": ci["auroc"][1]})
        out.append({**base, "lang": lang, "metric": "ece", "value": expected_calibration_error(y[m], p[m]), "n": n,
                    "ci_low": ci["ece"][0], "ci_high": ci["ece"][1]})
    return out


def control_labels(data: ProbeData, seed: int = 0) -> np.ndarray:
    """A control task (Hewitt and Liang 2019): a random label per prompt group, shared by its translations."""
    rng = np.random.default_rng(seed)
    groups = np.unique(data.groups)
    table = dict(zip(groups, rng.integers(0, 2, size=len(groups))))
    return np.array([table[g] for g in data.groups])


def layer_sweep(store, site: str = "resid_post", position="last", layers=None, judgments=None, probe: str = "logistic",
                n_folds: int = 5, control: bool = True, directions=None, n_boot: int = 1000,
                seed: int = 0) -> list[dict]:
    """Grouped-CV probe scores per layer and language, the control-task selectivity, and the probe-direction cosine.

    Args:
        store: Activation store.
        site: Residual site.
        position: Position label.
        layers: Layers (default: all in the store).
        judgments: Judged behaviour (see :func:`probes.data.read_judgments`); default: prompt labels.
        probe: ``logistic``, ``diffmean`` or ``torch``.
        n_folds: Outer folds (grouped by prompt group).
        control: Also score a control task and report ``selectivity`` = accuracy - control accuracy.
        directions: A :class:`~drift.metrics.directions.DirectionSet` for the cosine between each probe's weights and
            the refusal direction of the same layer (computed from the store when None).
        n_boot: Bootstrap replicates (over prompt groups) for the AUROC and ECE intervals; 0 for none.
        seed: Bootstrap seed.
    """
    from drift.metrics.directions import fit_directions

    out = []
    est = make_probe(probe)
    for layer in layers or store.layers:
        data = probe_dataset(store, site, layer, position, judgments)
        base = {"run_id": store.run.run_id, "site": site, "layer": int(layer), "position": str(position),
                "probe": probe, "target": data.target}
        ctrl_y = control_labels(data) if control else None
        if isinstance(est, TorchLogisticProbe):  # every fold (and the control task) in one batched solve
            p, *p_ctrl = batched_out_of_fold(data, [data.y] + ([ctrl_y] if control else []), est, n_folds)
        else:
            p = out_of_fold(data, est, n_folds)
            p_ctrl = [out_of_fold(ProbeData(data.X, ctrl_y, data.groups, data.langs, data.ids, "control"), est,
                                  n_folds)] if control else []
        recs = score_records(data.y, p, data.langs, base, data.groups, n_boot, seed)
        out += recs
        if control:
            ctrl_recs = score_records(ctrl_y, p_ctrl[0], data.langs, base, n_boot=0)
            ctrl_acc = {r["lang"]: r["value"] for r in ctrl_recs if r["metric"] == "accuracy"}
            for r in recs:
                if r["metric"] == "accuracy" and r["lang"] in ctrl_acc:
                    out.append({**r, "metric": "control_accuracy", "value": ctrl_acc[r["lang"]], "ci_low": np.nan,
                                "ci_high": np.nan})
                    out.append({**r, "metric": "selectivity", "value": r["value"] - ctrl_acc[r["lang"]],
                                "ci_low": np.nan, "ci_high": np.nan})
        model = clone(est).fit(data.X, data.y)
        dirs = directions or fit_directions(store, sites=[site], layers=[layer])
        r = dirs.direction(site, layer, position)
        w = model.coef_[0]
        cos = float(w @ r / (np.linalg.norm(w) * np.linalg.norm(r))) if np.linalg.norm(r) > 0 else float("nan")
        out.append({**base, "lang": "all", "metric": "cosine_with_direction", "value": cos, "n": len(data.y),
                    "ci_low": np.nan, "ci_high": np.nan})
    return out


def transfer_matrix(store, site: str, layer: int, position="last", judgments=None, probe: str = "logistic",
                    n_folds: int = 5) -> list[dict]:
    """Train on language A, test on language B (diagonal: grouped CV within A; off-diagonal: held-out groups).

    Test rows never share a prompt group with the training rows, so a probe cannot score by having seen a
    translation of the test item.
    """
    data = probe_dataset(store, site, layer, position, judgments)
    est = make_probe(probe)
    langs = sorted(np.unique(data.langs))
    out = []
    base = {"run_id": store.run.run_id, "site": site, "layer": int(layer), "position": str(position), "probe": probe,
            "target": data.target, "metric": "transfer_accuracy"}
    for a in langs:
        preds = {b: np.full(len(data.y), np.nan) for b in langs}
        for tr, te in _folds(data, n_folds):
            tr_a = tr[data.langs[tr] == a]
            if len(np.unique(data.y[tr_a])) < 2:
                continue
            model = clone(est).fit(data.X[tr_a], data.y[tr_a])
            for b in langs:
                te_b = te[data.langs[te] == b]
                if len(te_b):
                    preds[b][te_b] = model.predict_proba(data.X[te_b])[:, 1]
        for b in langs:
            m = ~np.isnan(preds[b])
            n = int(m.sum())
            if n:
                k = float(((preds[b][m] > 0.5) == (data.y[m] == 1)).sum())
                lo, hi = wilson(k, n)
                out.append({**base, "train_lang": a, "test_lang": b, "lang": b, "value": k / n, "n": n,
                            "ci_low": lo, "ci_high": hi})
    return out


def base_to_ft_transfer(base_store, ft_store, site: str, layer: int, position="last", judgments=None,
                        probe: str = "logistic", n_folds: int = 5) -> list[dict]:
    """Train on the base model's activations, test on the fine-tuned model's (held-out groups, same prompts).

    Reports ``base_to_base`` and ``base_to_ft`` accuracy per language; their difference measures how far the
    decision boundary moved.
    """
    from drift.compare import check_compatible

    check_compatible(base_store, ft_store)
    a = probe_dataset(base_store, site, layer, position, judgments)
    b = probe_dataset(ft_store, site, layer, position, judgments)
    order = {pid: i for i, pid in enumerate(b.ids)}
    b = b.subset(np.array([order[pid] for pid in a.ids]))
    est = make_probe(probe)
    p_base, p_ft = np.full(len(a.y), np.nan), np.full(len(a.y), np.nan)
    for tr, te in _folds(a, n_folds):
        model = clone(est).fit(a.X[tr], a.y[tr])
        p_base[te] = model.predict_proba(a.X[te])[:, 1]
        p_ft[te] = model.predict_proba(b.X[te])[:, 1]
    out = []
    base = {"run_id": ft_store.run.run_id, "base_run_id": base_store.run.run_id, "site": site, "layer": int(layer),
            "position": str(position), "probe": probe, "target": a.target}
    for name, p in (("base_to_base", p_base), ("base_to_ft", p_ft)):
        for r in score_records(a.y, p, a.langs, base, n_boot=0):
            if r["metric"] == "accuracy":
                out.append({**r, "metric": f"{name}_accuracy"})
    return out


def fit_layers_batched(store, site: str, layers, position="last", judgments=None, C: float = 1.0,
                       device: str = "cpu", by_lang: bool = False) -> dict:
    """Fit one logistic probe per layer (or per layer and language) in a single batched solve (``solve_logistic``).

    Returns:
        layer -> (coef, intercept), or (layer, lang) -> (coef, intercept) with ``by_lang``. Languages with unequal
        row counts are padded with zero-weight rows.
    """
    data = [probe_dataset(store, site, layer, position, judgments) for layer in layers]
    if not by_lang:
        coef, intercept = fit_logistic_batched(np.stack([d.X for d in data]), data[0].y, C=C, device=device)
        return {int(layer): (coef[i], float(intercept[i])) for i, layer in enumerate(layers)}
    langs = sorted(np.unique(data[0].langs))
    rows = [np.flatnonzero(data[0].langs == lang) for lang in langs]
    width = max(len(r) for r in rows)
    X = np.zeros((len(layers) * len(langs), width, data[0].X.shape[1]), dtype=data[0].X.dtype)
    y, weight = np.zeros(X.shape[:2]), np.zeros(X.shape[:2])
    keys = []
    for i, (d, layer) in enumerate(zip(data, layers)):
        for j, (lang, r) in enumerate(zip(langs, rows)):
            k = i * len(langs) + j
            X[k, :len(r)], y[k, :len(r)], weight[k, :len(r)] = d.X[r], d.y[r], 1.0
            keys.append((int(layer), str(lang)))
    coef, intercept = fit_logistic_batched(X, y, C=C, device=device, sample_weight=weight)
    return {key: (coef[k], float(intercept[k])) for k, key in enumerate(keys)}
