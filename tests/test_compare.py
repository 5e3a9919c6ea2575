"""drift compare / drift directions: stores in, long-form records out, with compatibility checks."""

import json

import numpy as np
import pandas as pd
import pytest
import torch

import drift
from drift import DriftError
from drift.cli import main
from drift.compare import ALL_METRICS, compare_stores


@pytest.fixture(scope="module")
def stores(tiny_dirs, tmp_path_factory):
    root = tmp_path_factory.mktemp("cmp")
    prompts = drift.load_prompts("builtin:prompts?lang=en,de")[::8]
    cfg = drift.CaptureConfig(sites=("resid_pre", "resid_post"), layers=(1, 2),
                              positions=("last", "post_instruction"))
    base = drift.load_model(str(tiny_dirs["llama"]), device="cpu", dtype="float32")
    ft = drift.load_model(str(tiny_dirs["llama"]), device="cpu", dtype="float32")
    with torch.no_grad():
        ft.model.model.layers[2].mlp.down_proj.weight.mul_(2.0)
    paths = {
        "base": drift.extract(base, prompts, root / "base.h5", cfg, progress=False),
        "base2": drift.extract(base, prompts, root / "base2.h5", cfg, progress=False),
        "ft": drift.extract(ft, prompts, root / "ft.h5", cfg, progress=False),
        "other_prompts": drift.extract(base, prompts[:10], root / "few.h5", cfg, progress=False),
        "gemma2": drift.extract(drift.load_model(str(tiny_dirs["gemma2"]), device="cpu", dtype="float32"), prompts,
                              root / "gemma2.h5", cfg, progress=False),
    }
    return paths


def _by(records, **kw):
    return [r for r in records if all(r[k] == v for k, v in kw.items())]


def test_identical_stores_have_no_drift(stores):
    with drift.open_store(stores["base"]) as a, drift.open_store(stores["base2"]) as b:
        recs = compare_stores(a, b, by_lang=True)
    for r in _by(recs, metric="linear_cka") + _by(recs, metric="cosine") + _by(recs, metric="direction_cosine"):
        assert r["value"] == pytest.approx(1.0)
    for r in _by(recs, metric="proj_shift_harmful"):
        assert r["value"] == pytest.approx(0.0, abs=1e-9)
    assert {r["lang"] for r in recs} == {"all", "en", "de"}


def test_drift_appears_only_after_the_changed_block(stores):
    with drift.open_store(stores["base"]) as a, drift.open_store(stores["ft"]) as b:
        recs = compare_stores(a, b, metrics=["linear_cka", "cosine", "rel_norm_change"], by_lang=False)
    cka = {(r["site"], r["layer"], r["position"]): r["value"] for r in _by(recs, metric="linear_cka")}
    assert cka[("resid_post", 1, "last")] == pytest.approx(1.0)
    assert cka[("resid_pre", 2, "last")] == pytest.approx(1.0)
    assert cka[("resid_post", 2, "last")] < 0.999
    row = _by(recs, metric="cosine", site="resid_post", layer=2, position="last")[0]
    assert row["ci_low"] <= row["value"] <= row["ci_high"] and row["run_id"] != row["base_run_id"]


def test_incompatible_stores_are_refused(stores):
    with drift.open_store(stores["base"]) as a:
        with drift.open_store(stores["other_prompts"]) as b, pytest.raises(DriftError, match="prompts differ"):
            compare_stores(a, b)
        with drift.open_store(stores["gemma2"]) as b, pytest.raises(DriftError, match="chat templates"):
            compare_stores(a, b)
        with pytest.raises(DriftError, match="unknown metric"):
            compare_stores(a, a, metrics=["cka"])


def test_cli_compare_and_directions(stores, tmp_path, capsys):
    out = tmp_path / "drift.csv"
    assert main(["compare", str(stores["base"]), str(stores["ft"]), "--out", str(out), "--by-lang"]) == 0
    df = pd.read_csv(out)
    assert {"run_id", "base_run_id", "site", "layer", "position", "lang", "metric", "value", "n", "ci_low",
            "ci_high"} <= set(df.columns)
    assert set(df["lang"]) == {"all", "en", "de"}
    assert main(["compare", str(stores["base"]), str(stores["ft"]), "--out", str(out)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert main(["directions", str(stores["base"]), "--out", str(tmp_path / "dirs")]) == 0
    cos = pd.read_csv(tmp_path / "dirs" / "cosine_matrix.csv")
    assert set(cos["lang_a"]) == {"en", "de", "all"}
    assert main(["directions", str(stores["base"]), "--out", str(tmp_path / "dirs")]) == 2


def test_cli_directions_select(tiny_dirs, tmp_path, capsys):
    prompts = drift.load_prompts("builtin:prompts?lang=en")[::4]
    lm = drift.load_model(str(tiny_dirs["llama"]), device="cpu", dtype="float32")
    store = drift.extract(lm, prompts, tmp_path / "s.h5",
                          drift.CaptureConfig(sites=("resid_pre",), positions=("post_instruction",)), progress=False)
    code = main(["directions", str(store), "--out", str(tmp_path / "sel"), "--select", "--device", "cpu",
                 "--dtype", "float32", "--quiet"])
    err = capsys.readouterr().err
    if code == 2:  # a random tiny model may have no candidate that passes the filters: that must be said clearly
        assert "no candidate direction passes" in err
        return
    sel = json.loads((tmp_path / "sel" / "selection.json").read_text())
    cands = pd.read_csv(tmp_path / "sel" / "candidates.csv")
    assert len(cands) == 3 * 8 and sel["layer"] < int(0.8 * 4)  # layer 3 is pruned before scoring
    assert np.load(tmp_path / "sel" / "selected_direction.npy").shape == (32,)


def test_streaming_compare_matches_whole_arrays(stores):
    """Chunk size does not change any record; CKA matches the batch functions on whole arrays."""
    from drift.metrics.cka import debiased_cka, linear_cka

    with drift.open_store(stores["base"]) as a, drift.open_store(stores["ft"]) as b:
        small = compare_stores(a, b, by_lang=True, chunk_size=3, metrics=ALL_METRICS,
                               n_boot=20)
        big = compare_stores(a, b, by_lang=True, chunk_size=10_000)
        x = a.read("resid_post", 2, positions=[-1])[:, 0]
        y = b.read("resid_post", 2, positions=[-1])[:, 0]
    key = lambda r: (r["site"], r["layer"], r["position"], r["lang"], r["metric"])  # noqa: E731
    big_by = {key(r): r["value"] for r in big}
    for r in small:
        if key(r) in big_by:
            assert r["value"] == pytest.approx(big_by[key(r)], rel=1e-9, abs=1e-12), key(r)
    got = {key(r): r["value"] for r in small}
    assert got[("resid_post", 2, "-1", "all", "linear_cka")] == pytest.approx(linear_cka(x, y), rel=1e-9)
    assert got[("resid_post", 2, "-1", "all", "debiased_cka")] == pytest.approx(debiased_cka(x, y), rel=1e-9)
    assert ("resid_post", 2, "-1", "de", "rbf_cka") in got and ("resid_post", 2, "-1", "all", "linear_cka_boot") in got


def test_cli_weights(tiny_dirs, tmp_path, capsys):
    peft = pytest.importorskip("peft")
    from tiny import make_model

    cfg = peft.LoraConfig(r=2, lora_alpha=4, target_modules=["o_proj"], init_lora_weights=False)
    peft.get_peft_model(make_model("llama"), cfg).save_pretrained(tmp_path / "ad")
    out = tmp_path / "w.csv"
    assert main(["weights", "--model", str(tiny_dirs["llama"]), "--adapter", str(tmp_path / "ad"), "--out",
                 str(out)]) == 0
    df = pd.read_csv(out)
    assert sorted(df[df.metric == "delta_rel"]["layer"]) == [0, 1, 2, 3]
    assert main(["weights", "--model", str(tiny_dirs["llama"]), "--out", str(tmp_path / "x.csv")]) == 2
    assert "exactly one of --adapter" in capsys.readouterr().err


def test_parquet_output(stores, tmp_path):
    from drift.pipeline import run_compare

    path = run_compare(stores["base"], stores["ft"], tmp_path / "d.parquet", metrics=["cosine"])
    df = pd.read_parquet(path)
    assert set(df["metric"]) == {"cosine", "cosine_q05", "cosine_q50"} and (df["n"] > 0).all()


def test_noise_floor_rows(stores, tmp_path):
    out = tmp_path / "f.csv"
    assert main(["compare", str(stores["base"]), str(stores["ft"]), "--out", str(out), "--metrics", "linear_cka",
                 "--floor", str(stores["base2"])]) == 0
    df = pd.read_csv(out)
    assert set(df["comparison"]) == {"drift", "noise_floor"}
    drift_rows = df[(df.comparison == "drift") & (df.site == "resid_post") & (df.layer == 2)]
    floor_rows = df[(df.comparison == "noise_floor") & (df.site == "resid_post") & (df.layer == 2)]
    assert len(drift_rows) == len(floor_rows) > 0


def test_cli_patch(tiny_dirs, tmp_path):
    out = tmp_path / "p.csv"
    assert main(["patch", "--base", str(tiny_dirs["llama"]), "--ft", str(tiny_dirs["llama"]), "--prompts",
                 "builtin:prompts?lang=en&label=harmful", "--out", str(out), "--device", "cpu", "--dtype",
                 "float32"]) == 0
    df = pd.read_csv(out)
    pooled = df[df.lang == "all"].set_index("layer")["value"]
    assert set(pooled.index) == {-2, -1, 0, 1, 2, 3}
    assert np.allclose(pooled.to_numpy(), pooled.iloc[0])  # identical models: patching changes nothing
