"""drift.relate: drift x ASR-change statistics on synthetic studies with known answers."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from drift import DriftError
from drift.relate import RelateOptions, join_records, load_runs, n_permutations, relate, relate_study, write_relate
from drift.relate.synthetic import synthetic_study

CAP = "mcq:accuracy"


def _relate(study: dict, **kw):
    opts = RelateOptions(**{"capability_metric": CAP, **kw})
    return relate(study["drift"], study["asr"], study["runs"], study["capability"], opts)


def _rows(rel: pd.DataFrame, metric: str, **kw) -> pd.DataFrame:
    sel = rel["metric"] == metric
    for k, v in kw.items():
        sel &= rel[k] == v
    return rel[sel]


@pytest.fixture(scope="module")
def planted():
    return _relate(synthetic_study(seed=0), n_boot=500)


def test_planted_layer_is_recovered_and_significant(planted):
    rel, summ = planted.relations, planted.summary
    assert set(summ["eval_lang"]) == {"all", "en", "de", "fr", "zh"} and len(summ) == 5
    assert (summ["best_layer"] == 5).all()
    pooled = summ.set_index("eval_lang").loc["all"]
    assert pooled["significant"] and pooled["value"] > 0.6 and pooled["ci_low"] > 0.3
    assert pooled["significant_layers"] == "5" and pooled["drift_coef_significant"]
    assert summ["significant"].sum() >= 4
    for metric in ("spearman", "pearson", "drift_coef"):
        sig = _rows(rel, metric)
        assert set(sig.loc[sig["significant"], "layer"]) <= {5}, metric
    row = _rows(rel, "spearman", layer=5, eval_lang="all").iloc[0]
    assert row["ci_low"] <= row["value"] <= row["ci_high"] and row["n_runs"] == 24 and row["n"] == 96
    assert row["family_size"] == 40 and row["correction"] == "holm" and row["flags"] == ""


def test_correlations_match_scipy_and_rows_are_complete(planted):
    from scipy.stats import pearsonr, spearmanr

    j = planted.joined
    cell = j[(j["layer"] == 3) & (j["eval_lang"] == "de")]
    assert len(cell) == 24 and cell["asr_change"].notna().all() and set(cell["drift_lang"]) == {"de"}
    rel = planted.relations
    assert _rows(rel, "spearman", layer=3, eval_lang="de")["value"].iloc[0] == pytest.approx(
        spearmanr(cell["drift"], cell["asr_change"]).statistic)
    assert _rows(rel, "pearson", layer=3, eval_lang="de")["value"].iloc[0] == pytest.approx(
        pearsonr(cell["drift"], cell["asr_change"]).statistic)
    # one row per (measure, layer, eval lang, statistic): 8 layers x 5 scopes x 3
    assert len(rel) == 120 and not rel.duplicated(["measure", "layer", "eval_lang", "metric"]).any()
    assert rel["p_adj"].ge(rel["p_value"]).all()


def test_permutation_pvalues_agree_with_scipy_and_pooling_centres_each_language():
    from scipy.stats import pearsonr, spearmanr

    from drift.relate.correlate import correlate

    rng = np.random.default_rng(3)
    asr = rng.normal(size=(24, 1))
    drift = np.concatenate([0.4 * asr[:, :, None] + rng.normal(size=(24, 1, 4)), rng.normal(size=(24, 1, 4))], 2)
    for rank, ref in ((True, spearmanr), (False, pearsonr)):
        res = correlate(drift, asr, rank, n_boot=0, n_perm=5000, seed=0)
        expected = [ref(drift[:, 0, u], asr[:, 0]) for u in range(8)]
        assert np.allclose(res.value, [e.statistic for e in expected])
        assert np.allclose(res.p_value, [e.pvalue for e in expected], atol=0.03)
    # pooled over two languages with very different means: the same as the correlation of centred values
    asr2 = np.c_[asr[:, 0], 5 + 0.5 * asr[:, 0] + rng.normal(size=24)]
    drift2 = np.stack([drift[:, 0], 10 + drift[:, 0]], axis=1)
    res = correlate(drift2, asr2, False, n_boot=0, n_perm=100, seed=0)
    d_centred, a_centred = (drift2[:, :, 0] - drift2[:, :, 0].mean(0)).ravel(), (asr2 - asr2.mean(0)).ravel()
    assert res.value[0] == pytest.approx(pearsonr(d_centred, a_centred).statistic)


def test_no_relation_nothing_significant_after_correction():
    seeds_with_false_positives = 0
    for seed in range(4):
        rel = _relate(synthetic_study(planted_layer=None, seed=seed), n_boot=0).relations
        seeds_with_false_positives += bool(rel.loc[rel["metric"] != "drift_coef", "significant"].any())
        if seed != 1:
            assert not rel["significant"].any(), seed
    # Holm keeps the family-wise rate under 5%: over 80 more seeds, 1 had a false positive correlation
    assert seeds_with_false_positives <= 1


def test_capability_control_removes_a_confounded_relation():
    tables = _relate(synthetic_study(confounded=True, seed=0), n_boot=0)
    rel = tables.relations
    assert _rows(rel, "spearman")["significant"].all()  # drift and ASR change both follow capability
    coef = _rows(rel, "drift_coef")
    assert not coef["significant"].any() and coef["p_value"].median() > 0.2
    assert coef["method"].str.contains("capability_change").all()
    assert not tables.summary["drift_coef_significant"].any()
    # without the control, the same data look like drift predicts ASR change
    no_cap = relate(*(synthetic_study(confounded=True, seed=0)[k] for k in ("drift", "asr", "runs")),
                    options=RelateOptions(n_boot=0))
    coef = _rows(no_cap.relations, "drift_coef")
    assert coef["significant"].all() and coef["flags"].str.contains("no_capability").all()


def test_regression_method_is_recorded(planted):
    coef = _rows(planted.relations, "drift_coef")
    pooled, per_lang = coef[coef["eval_lang"] == "all"], coef[coef["eval_lang"] != "all"]
    assert pooled["method"].str.contains(r"C\(eval_lang\) \+ C\(ft_lang\); errors clustered by run_id \(24\)").all()
    assert per_lang["method"].str.endswith("C(ft_lang); HC3 errors").all()  # 8 seeds: too few clusters
    mixed = _relate(synthetic_study(seeds=5, layers=2, seed=1), n_boot=0, regression="mixed", min_clusters=5)
    methods = _rows(mixed.relations, "drift_coef")["method"]
    assert methods.str.startswith("MixedLM").any() or methods.str.contains("reg_fallback|failed").all()
    assert methods.str.contains(r"^MixedLM|^mixed model.*; OLS").all()


def test_few_runs_are_flagged_and_two_runs_give_nan_not_zero():
    few = _relate(synthetic_study(seeds=1, layers=3, seed=2), n_boot=100)
    spear = _rows(few.relations, "spearman")
    assert (spear["n_runs"] == 3).all() and spear["flags"].str.contains("few_runs").all()
    assert spear["method"].str.startswith("exact permutation (6)").all()
    assert spear["value"].notna().all() and (spear["p_value"] >= 1 / 6).all() and not spear["significant"].any()
    assert few.summary["flags"].str.contains("few_runs").all()
    two = _relate(synthetic_study(ft_langs=("fr", "de"), seeds=1, layers=3, seed=2), n_boot=100)
    rel = two.relations
    assert rel[["value", "ci_low", "ci_high", "p_value", "p_adj"]].isna().all().all()
    assert not rel["significant"].any() and two.summary["best_layer"].isna().all()
    assert (two.summary["flags"] == "no_estimate;few_runs").all()


def test_degenerate_input_gives_nan_not_zero():
    study = synthetic_study(seeds=4, layers=3, seed=3)
    d = study["drift"]
    d.loc[d["layer"] == 1, "value"] = 0.25
    rel = _relate(study, n_boot=100).relations
    flat = rel[(rel["layer"] == 1)]
    assert flat["value"].isna().all() and flat["p_value"].isna().all()
    assert _rows(flat, "spearman")["flags"].str.contains("degenerate").all()
    assert rel.loc[rel["layer"] != 1, "value"].notna().all()
    # a constant ASR change (nothing moved) is NaN as well
    a = study["asr"]
    a.loc[a["run_id"] != "base", "value"] = 0.2
    rel = _relate(study, n_boot=100).relations
    assert rel["value"].isna().all() and not rel["significant"].any()


def test_joins_go_through_run_id_only():
    study = synthetic_study(seeds=4, layers=3, seed=4)
    ref = _relate(study, n_boot=100).relations
    rng = np.random.default_rng(0)
    rename = {r["run_id"]: f"run-{rng.integers(1e9):09d}" for r in study["runs"]}
    runs = [{**r, "run_id": rename[r["run_id"]], "parent_run_id": rename.get(r["parent_run_id"]),
             "model": "other-name", "checkpoint": "/elsewhere"} for r in study["runs"]][::-1]
    other = {"runs": runs, **{k: study[k].assign(run_id=study[k]["run_id"].map(rename)).sample(frac=1, random_state=1)
                               for k in ("drift", "asr", "capability")}}
    other["drift"]["base_run_id"] = other["drift"]["base_run_id"].map(rename)
    got = _relate(other, n_boot=100).relations
    cols = ["value", "ci_low", "ci_high", "p_value", "p_adj"]
    pd.testing.assert_frame_equal(got[cols], ref[cols])
    # records of unknown runs, or drift against another base, are not joined
    stray = study["drift"].assign(run_id="not-a-run")
    wrong_base = study["drift"].assign(base_run_id="someone-else", value=99.0)
    extra = {**study, "drift": pd.concat([study["drift"], stray, wrong_base])}
    pd.testing.assert_frame_equal(_relate(extra, n_boot=100).relations[cols], ref[cols])
    with pytest.raises(DriftError, match="no drift records"):
        _relate({**study, "drift": stray})


def test_drift_lang_modes():
    study = synthetic_study(seeds=3, layers=2, eval_langs=("en", "de"), seed=5)
    study["drift"] = study["drift"][study["drift"]["lang"] != "de"]
    opts = RelateOptions(capability_metric=CAP)
    match = join_records(study["drift"], study["asr"], study["runs"], study["capability"], opts)
    assert set(match.loc[match["eval_lang"] == "de", "drift_lang"]) == {"all"}
    assert set(match.loc[match["eval_lang"] == "en", "drift_lang"]) == {"en"}
    rel = _relate(study, n_boot=0).relations
    assert rel.loc[rel["eval_lang"] == "de", "flags"].str.contains("pooled_drift").all()
    assert set(rel.loc[rel["eval_lang"] == "all", "drift_lang"]) == {"mixed"}
    strict = _relate(study, n_boot=0, drift_lang="strict").relations
    assert set(strict["eval_lang"]) == {"en"}
    pooled = _relate(study, n_boot=0, drift_lang="pooled").relations
    assert set(pooled["drift_lang"]) == {"all"} and not pooled["flags"].str.contains("pooled_drift").any()


def test_corrections_and_permutation_count(planted):
    assert n_permutations(RelateOptions(), 40) == 3200 and n_permutations(RelateOptions(), 10) == 2000
    assert n_permutations(RelateOptions(n_perm=500), 10_000) == 500
    study = synthetic_study(seeds=4, layers=3, seed=6)
    holm = _relate(study, n_boot=0).relations
    bh = _relate(study, n_boot=0, correction="bh").relations
    assert (bh["p_adj"] <= holm["p_adj"] + 1e-12).all() and set(bh["correction"]) == {"bh"}
    coarse = _relate(study, n_boot=0, n_perm=50).relations
    corr = coarse[coarse["metric"] != "drift_coef"]
    assert corr["flags"].str.contains("perm_resolution").all()
    assert not planted.relations["flags"].str.contains("perm_resolution").any()


def test_seeded_and_reproducible():
    study = synthetic_study(seeds=4, layers=2, seed=7)
    a, b = _relate(study, n_boot=200), _relate(study, n_boot=200)
    pd.testing.assert_frame_equal(a.relations, b.relations)
    c = _relate(study, n_boot=200, seed=1).relations
    assert not np.allclose(a.relations["ci_low"], c["ci_low"], equal_nan=True)


def test_write_relate_atomic_and_refuses_overwrite(tmp_path):
    tables = _relate(synthetic_study(seeds=2, layers=2, seed=8), n_boot=0)
    paths = write_relate(tmp_path / "relate", tables)
    assert sorted(p.name for p in (tmp_path / "relate").iterdir()) == ["joined.csv", "relate.csv", "summary.csv"]
    back = pd.read_csv(paths["relations"], keep_default_na=False, na_values=[""])
    assert list(back.columns) == list(tables.relations.columns) and len(back) == len(tables.relations)
    with pytest.raises(DriftError, match="already exists"):
        write_relate(tmp_path / "relate", tables)
    write_relate(tmp_path / "relate", tables, overwrite=True)
    assert not list((tmp_path / "relate").glob("*.tmp"))


def test_relate_study_reads_the_run_folder(tmp_path):
    study = synthetic_study(seeds=3, layers=2, seed=9)
    run_dir = tmp_path / "study"
    for sub in ("drift", "judged", "capability/x"):
        (run_dir / sub).mkdir(parents=True)
    (run_dir / "study.json").write_text(json.dumps({"name": "s", "runs": study["runs"]}))
    for run_id, g in study["drift"].groupby("run_id"):
        g.to_csv(run_dir / "drift" / f"file-{len(run_id)}-{run_id[::-1]}.csv", index=False)
    study["asr"].to_csv(run_dir / "judged" / "asr.csv", index=False)
    study["capability"].to_csv(run_dir / "capability" / "x" / "capability.csv", index=False)
    paths = relate_study(run_dir, options=RelateOptions(n_boot=0))
    got = pd.read_csv(paths["relations"])
    ref = _relate(study, n_boot=0).relations
    assert np.allclose(got["value"], ref["value"], equal_nan=True)
    assert load_runs(run_dir / "study.json")["run_id"].tolist()[0] == "base"


def test_run_metadata_sources():
    from drift.runs import RunManifest

    manifests = [RunManifest("b", "m"), RunManifest("f1", "m", "ckpt", "sft", "fr", 3, 1.0,
                                                    extra={"parent_run_id": "b"})]
    runs = load_runs(manifests)
    assert runs.set_index("run_id").loc["f1", ["parent_run_id", "ft_lang", "seed"]].tolist() == ["b", "fr", 3]
    assert load_runs({"runs": [{"run_id": "x"}]})["parent_run_id"].isna().all()
    with pytest.raises(DriftError, match="more than once"):
        load_runs([{"run_id": "x"}, {"run_id": "x"}])
    # a run table without parents: the parent comes from the drift records' base_run_id
    study = synthetic_study(seeds=2, layers=1, seed=11)
    bare = [{k: v for k, v in r.items() if k not in ("parent_run_id", "role")} for r in study["runs"]]
    joined = join_records(study["drift"], study["asr"], bare)
    assert set(joined["parent_run_id"]) == {"base"} and joined["run_id"].nunique() == 6


def test_user_errors_name_the_fix():
    study = synthetic_study(seeds=2, layers=1, seed=10)
    with pytest.raises(DriftError, match="correction"):
        RelateOptions(correction="bonferroni")
    cap = pd.concat([study["capability"], study["capability"].assign(suite="perplexity", metric="ppl")])
    with pytest.raises(DriftError, match="capability_metric"):
        relate(study["drift"], study["asr"], study["runs"], cap)
    with pytest.raises(DriftError, match="roles"):
        relate(study["drift"], study["asr"], study["runs"], options=RelateOptions(roles=("aligned",)))
    with pytest.raises(DriftError, match="same judge and language"):
        relate(study["drift"], study["asr"][study["asr"]["run_id"] != "base"], study["runs"])
