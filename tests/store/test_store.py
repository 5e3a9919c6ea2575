"""The activation store: reading API, write-once semantics, locking, kill-and-resume."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import h5py
import numpy as np
import pytest

import drift
from drift import CaptureConfig, DriftError, extract, load_model, open_store
from drift.store import partial_path

CFG = CaptureConfig(sites=("resid_pre", "resid_post"), positions=("last", "post_instruction", "all"), batch_size=3)


@pytest.fixture(scope="module")
def prompts():
    return drift.load_prompts("builtin:prompts?lang=en")[95:115]  # harmful and harmless


@pytest.fixture(scope="module")
def store_path(tiny_llama, prompts, tmp_path_factory):
    lm = load_model(str(tiny_llama), device="cpu", dtype="float32")
    return extract(lm, prompts, tmp_path_factory.mktemp("s") / "a.h5", CFG, progress=False)


def test_metadata_and_prompt_table(store_path, prompts):
    with open_store(store_path) as s:
        assert s.complete and s.n_prompts == len(prompts) and s.d_model == 32
        assert s.sites == ["resid_pre", "resid_post"] and s.layers == [0, 1, 2, 3]
        assert s.positions[0] == "last" and s.positions[-1] == -1 and s.has_ragged
        assert list(s.prompts["id"]) == [p.id for p in prompts]
        assert s.run.method == "base" and s.run.run_id.startswith("llama-base-")
        prov = s.provenance
        assert prov["prompts"]["hash"] == prompts.content_hash()
        assert prov["capture"]["sites"] == ["resid_pre", "resid_post"] and prov["model"]["chat_template_hash"]


def test_read_filters_rows_and_positions(store_path):
    with open_store(store_path) as s:
        full = s.read("resid_post", 2)
        assert full.shape == (s.n_prompts, len(s.positions), 32) and full.dtype == np.float32
        harmful = s.read("resid_post", 2, labels=["harmful"], positions=["last"])
        mask = (s.prompts["label"] == "harmful").to_numpy()
        np.testing.assert_array_equal(harmful, full[mask][:, :1])
        rows = [7, 2, 11]
        np.testing.assert_array_equal(s.read("resid_post", 2, rows=rows), full[rows])
        t = s.read("resid_post", 2, rows=rows, as_torch=True)
        assert tuple(t.shape) == (3, len(s.positions), 32)
        np.testing.assert_array_equal(s.read("resid_post", 2, positions=[-1, "last"])[:, 0], full[:, -1])


def test_iter_chunks_covers_every_row_once(store_path):
    with open_store(store_path) as s:
        full = s.read("resid_pre", 1)
        seen = []
        for rows, block in s.iter_chunks("resid_pre", 1, chunk_size=4):
            np.testing.assert_array_equal(block, full[rows])
            seen.extend(rows.tolist())
        assert sorted(seen) == list(range(s.n_prompts))
        sub = [r for rows, _ in s.iter_chunks("resid_pre", 1, chunk_size=4, rows=[1, 5]) for r in rows]
        assert sorted(sub) == [1, 5]


def test_ragged_and_xarray(store_path):
    with open_store(store_path) as s:
        rag = s.read_ragged("resid_post", 3, rows=[0, 4])
        assert [r.shape[0] for r in rag] == list(s.prompts["n_tokens"].iloc[[0, 4]])
        np.testing.assert_array_equal(rag[1][-1], s.read("resid_post", 3, rows=[4], positions=["last"])[0, 0])
        da = s.to_xarray("resid_post", 3, langs=["en"], positions=["last"])
        assert da.dims == ("prompt", "position", "d_model") and set(da.coords["lang"].values) == {"en"}


def test_read_errors(store_path):
    with open_store(store_path) as s:
        with pytest.raises(DriftError, match="site 'resid_mid' is not in this store"):
            s.read("resid_mid", 0)
        with pytest.raises(DriftError, match="layer 9 is not in this store"):
            s.read("resid_post", 9)
        with pytest.raises(DriftError, match="position 'mean' is not in this store"):
            s.read("resid_post", 0, positions=["mean"])
    with pytest.raises(DriftError, match="not found"):
        open_store(store_path.parent / "missing.h5")


def test_refuses_overwrite_then_replaces_only_when_asked(store_path, tiny_llama, prompts):
    before = store_path.read_bytes()
    lm = load_model(str(tiny_llama), device="cpu", dtype="float32")
    with pytest.raises(DriftError, match="already exists"):
        extract(lm, prompts, store_path, CFG, progress=False)
    assert store_path.read_bytes() == before
    extract(lm, prompts[:5], store_path, CFG, progress=False, overwrite=True)
    with open_store(store_path) as s:
        assert s.n_prompts == 5
    extract(lm, prompts, store_path, CFG, progress=False, overwrite=True)


def test_second_writer_is_refused(tiny_llama, prompts, tmp_path):
    from drift.store.writer import _lock, _unlock

    out = tmp_path / "x.h5"
    fd = _lock(out)  # as if another process were writing
    try:
        lm = load_model(str(tiny_llama), device="cpu", dtype="float32")
        with pytest.raises(DriftError, match="another process is writing"):
            extract(lm, prompts, out, CFG, progress=False)
    finally:
        _unlock(out, fd)


def test_unknown_layout_version_is_refused(store_path, tmp_path):
    copy = tmp_path / "old.h5"
    copy.write_bytes(store_path.read_bytes())
    with h5py.File(copy, "r+") as f:
        f.attrs["encoding-version"] = "9.0"
    with pytest.raises(DriftError, match="layout 9.0"):
        open_store(copy)


KILLER = textwrap.dedent(
    """
    import os, signal, sys
    import drift
    from drift.store.writer import StoreWriter
    kill_after = int(sys.argv[3])
    original = StoreWriter.write_batch
    def write_then_die(self, *a, **k):
        original(self, *a, **k)
        if self.committed >= kill_after:
            os.kill(os.getpid(), signal.SIGKILL)
    StoreWriter.write_batch = write_then_die
    lm = drift.load_model(sys.argv[1], device="cpu", dtype="float32")
    prompts = drift.load_prompts("builtin:prompts?lang=en")[95:115]
    cfg = drift.CaptureConfig(sites=("resid_pre", "resid_post"), positions=("last", "post_instruction", "all"),
                              batch_size=3)
    drift.extract(lm, prompts, sys.argv[2], cfg, progress=False)
    """
)


def _datasets(path: Path) -> dict:
    out = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda name, obj: out.__setitem__(name, obj[()]) if isinstance(obj, h5py.Dataset) else None)
        attrs = {k: v for k, v in f.attrs.items() if k != "created"}
    return {"data": out, "attrs": attrs}


@pytest.mark.parametrize("kill_after", [3, 12])
def test_kill_and_resume_is_bit_identical(store_path, tiny_llama, prompts, tmp_path, kill_after):
    out = tmp_path / "k.h5"
    script = tmp_path / "killer.py"
    script.write_text(KILLER)
    proc = subprocess.run([sys.executable, str(script), str(tiny_llama), str(out), str(kill_after)],
                          capture_output=True, text=True)
    assert proc.returncode == -9, proc.stderr
    assert not out.exists() and partial_path(out).exists()
    with h5py.File(partial_path(out), "r") as f:
        assert f.attrs["committed"] >= kill_after and not f.attrs["complete"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    cli = subprocess.run([sys.executable, "-m", "drift.cli", "extract", "--model", str(tiny_llama), "--prompts",
                          "builtin:prompts?lang=en", "--out", str(out), "--resume"], capture_output=True, text=True,
                         env=env)
    assert cli.returncode == 2 and "cannot resume" in cli.stderr  # other prompts: refused, partial kept
    assert partial_path(out).exists()
    lm = load_model(str(tiny_llama), device="cpu", dtype="float32")
    extract(lm, prompts, out, CFG, resume=True, progress=False)
    assert out.exists() and not partial_path(out).exists()
    got, want = _datasets(out), _datasets(store_path)
    assert got["data"].keys() == want["data"].keys()
    for name in want["data"]:
        np.testing.assert_array_equal(got["data"][name], want["data"][name], err_msg=name)
    assert json.loads(got["attrs"]["provenance"]) == json.loads(want["attrs"]["provenance"])
    assert got["attrs"]["committed"] == want["attrs"]["committed"] and got["attrs"]["complete"]
