"""Probe sweeps on stores of a tiny model: grouped folds, controls, transfer, CLI."""

import json

import numpy as np
import pandas as pd
import pytest
import torch

import drift
from drift import DriftError
from drift.cli import main
from probes import (
    layer_sweep,
    load_probes,
    probe_dataset,
    read_judgments,
    save_probes,
    transfer_matrix,
)
from probes.estimators import LogisticProbe, TorchLogisticProbe
from probes.sweep import _folds, base_to_ft_transfer, fit_layers_batched


@pytest.fixture(scope="module")
def stores(tiny_dirs, tmp_path_factory):
    root = tmp_path_factory.mktemp("probe")
    prompts = drift.load_prompts("builtin:prompts?lang=en,de,fr")[::3]
    cfg = drift.CaptureConfig(sites=("resid_post",), layers=(1, 3), positions=("last", "mean"))
    base = drift.load_model(str(tiny_dirs["llama"]), device="cpu", dtype="float32")
    ft = drift.load_model(str(tiny_dirs["llama"]), device="cpu", dtype="float32")
    with torch.no_grad():
        ft.model.model.layers[2].mlp.down_proj.weight.mul_(3.0)
    return {"base": drift.extract(base, prompts, root / "b.h5", cfg, progress=False),
            "ft": drift.extract(ft, prompts, root / "f.h5", cfg, progress=False), "root": root}


def test_folds_never_split_groups(stores):
    with drift.open_store(stores["base"]) as s:
        data = probe_dataset(s, "resid_post", 1, "mean")
        for tr, te in _folds(data, 5):
            assert not set(data.groups[tr]) & set(data.groups[te])


def test_layer_sweep_records(stores):
    with drift.open_store(stores["base"]) as s:
        recs = layer_sweep(s, "resid_post", "mean", probe="diffmean", n_folds=4)
    df = pd.DataFrame(recs)
    assert set(df["layer"]) == {1, 3} and set(df["lang"]) == {"all", "en", "de", "fr"}
    assert {"accuracy", "auroc", "ece", "control_accuracy", "selectivity", "cosine_with_direction"} <= set(df.metric)
    acc = df[(df.metric == "accuracy")]
    assert ((acc.ci_low <= acc.value) & (acc.value <= acc.ci_high)).all()
    for metric in ("auroc", "ece"):  # group-bootstrap intervals
        rows = df[df.metric == metric]
        assert rows[["ci_low", "ci_high"]].notna().all().all() and (rows.ci_low <= rows.ci_high).all()
    auroc = df[df.metric == "auroc"]
    assert ((auroc.ci_low <= auroc.value + 1e-12) & (auroc.value <= auroc.ci_high + 1e-12)).all()
    cos = df[df.metric == "cosine_with_direction"]["value"]
    assert np.allclose(cos, 1.0)  # the diff-of-means probe's weights are the refusal direction


def test_transfer_matrix_and_base_to_ft(stores):
    with drift.open_store(stores["base"]) as b, drift.open_store(stores["ft"]) as f:
        tm = pd.DataFrame(transfer_matrix(b, "resid_post", 3, "mean", probe="diffmean", n_folds=4))
        assert set(zip(tm.train_lang, tm.test_lang)) == {(a, c) for a in ("de", "en", "fr") for c in ("de", "en", "fr")}
        bt = pd.DataFrame(base_to_ft_transfer(b, f, "resid_post", 3, "mean", probe="diffmean", n_folds=4))
        assert {"base_to_base_accuracy", "base_to_ft_accuracy"} == set(bt.metric)
        same = pd.DataFrame(base_to_ft_transfer(b, b, "resid_post", 1, "mean", probe="diffmean", n_folds=4))
        pivot = same.pivot_table(index="lang", columns="metric", values="value")
        assert np.allclose(pivot["base_to_base_accuracy"], pivot["base_to_ft_accuracy"])


def test_judged_behaviour_labels(stores, tmp_path):
    with drift.open_store(stores["base"]) as s:
        ids = list(s.prompts["id"])
        verdicts = ["refusal", "compliance", "incoherent", None]
        path = tmp_path / "judgments.jsonl"
        path.write_text("".join(json.dumps({"id": pid, "judge": "lex", "verdict": verdicts[i % 4]}) + "\n"
                                for i, pid in enumerate(ids)))
        data = probe_dataset(s, "resid_post", 1, "last", read_judgments(path))
        assert data.target == "behaviour" and len(data.y) == len(range(0, len(ids), 4)) + len(range(1, len(ids), 4))
        assert set(data.y) == {0, 1}
    with pytest.raises(DriftError, match="judgments file not found"):
        read_judgments(tmp_path / "none.jsonl")


def test_save_load_and_batched_layers(stores, tmp_path):
    with drift.open_store(stores["base"]) as s:
        data = probe_dataset(s, "resid_post", 3, "mean")
        probe = LogisticProbe(Cs=(1.0,)).fit(data.X, data.y)
        path = save_probes(tmp_path / "p.npz", {("resid_post", 3, "mean"): probe}, s)
        loaded, header = load_probes(path)
        np.testing.assert_array_equal(loaded[("resid_post", 3, "mean")]["coef"], probe.coef_)
        assert header["run"]["run_id"] == s.run.run_id
        fitted = fit_layers_batched(s, "resid_post", [1, 3], "mean")
        assert set(fitted) == {1, 3} and fitted[3][0].shape == (32,)
        ref = TorchLogisticProbe(tol=1e-9).fit(data.X, data.y)
        np.testing.assert_allclose(fitted[3][0], ref.coef_[0], atol=1e-4 * np.abs(ref.coef_).max())
        per_lang = fit_layers_batched(s, "resid_post", [1, 3], "mean", by_lang=True)
        assert set(per_lang) == {(layer, lang) for layer in (1, 3) for lang in ("de", "en", "fr")}
        fr = data.langs == "fr"  # one row fewer than de and en: padded with a zero-weight row
        ref = TorchLogisticProbe(tol=1e-9).fit(data.X[fr], data.y[fr])
        np.testing.assert_allclose(per_lang[(3, "fr")][0], ref.coef_[0], atol=1e-4 * np.abs(ref.coef_).max())


def test_cli_probe(stores, tmp_path):
    """Run in a fresh process, so no global state left by other tests (torch, scikit-learn) can leak in."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    out = tmp_path / "probes.csv"
    cmd = [sys.executable, "-m", "drift.cli", "probe", str(stores["base"]), "--out", str(out), "--probe", "diffmean",
           "--position", "mean", "--transfer", str(stores["ft"]), "--folds", "4", "--save", str(tmp_path / "p.npz")]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    df = pd.read_csv(out)
    assert {"accuracy", "transfer_accuracy", "base_to_ft_accuracy"} <= set(df.metric)
    assert (tmp_path / "p.npz").exists()
    again = subprocess.run(cmd[:7], capture_output=True, text=True, env=env)
    assert again.returncode == 2 and "already exists" in again.stderr


def test_batched_out_of_fold_equals_one_fit_per_fold(stores):
    """The torch probe's sweep solves every fold and the control task at once: same probabilities as fold by fold."""
    from probes.sweep import batched_out_of_fold, control_labels, out_of_fold
    from probes.data import ProbeData

    with drift.open_store(stores["base"]) as s:
        data = probe_dataset(s, "resid_post", 3, "mean")
    probe = TorchLogisticProbe(tol=1e-8)
    ctrl = control_labels(data)
    batched = batched_out_of_fold(data, [data.y, ctrl], probe, n_folds=4)
    one = out_of_fold(data, probe, 4)
    one_ctrl = out_of_fold(ProbeData(data.X, ctrl, data.groups, data.langs, data.ids, "control"), probe, 4)
    for got, ref in ((batched[0], one), (batched[1], one_ctrl)):
        assert np.isnan(got).sum() == np.isnan(ref).sum() == 0
        np.testing.assert_allclose(got, ref, atol=1e-6)
    # a fold whose training rows hold one class is left out (NaN), as fold by fold
    single = np.where(np.isin(np.arange(len(data.y)), _folds(data, 4)[0][0]), 0, data.y)
    left = batched_out_of_fold(data, [single], probe, n_folds=4)[0]
    assert np.isnan(left[_folds(data, 4)[0][1]]).all() and not np.isnan(left).all()


def test_torch_sweep_matches_fold_by_fold(stores, monkeypatch):
    import probes.sweep as sweep

    with drift.open_store(stores["base"]) as s:
        fast = pd.DataFrame(layer_sweep(s, "resid_post", "mean", probe="torch", n_folds=4, n_boot=0))
        monkeypatch.setattr(sweep, "TorchLogisticProbe", type("Other", (), {}))  # forces the per-fold path
        slow = pd.DataFrame(layer_sweep(s, "resid_post", "mean", probe="torch", n_folds=4, n_boot=0))
    key = ["layer", "lang", "metric"]
    merged = fast.merge(slow, on=key, suffixes=("", "_ref"))
    assert len(merged) == len(fast) == len(slow)
    assert {"accuracy", "auroc", "control_accuracy", "selectivity", "cosine_with_direction"} <= set(merged.metric)
    both = merged.value.notna() & merged.value_ref.notna()
    assert (merged.value.notna() == merged.value_ref.notna()).all()
    assert (merged.value[both] - merged.value_ref[both]).abs().max() < 1e-6
