"""docs/scale.md runs as written (its bash and python blocks; sh blocks are GPU-machine examples)."""

import json

import pytest
from test_docs import _run_page

pytest.importorskip("ray")


@pytest.mark.slow
def test_scale_page_runs(tmp_path):
    _run_page("docs/scale.md", tmp_path)
    meta = json.loads((tmp_path / "gen.jsonl.meta.json").read_text())
    assert meta["n_completions"] == 20 and len(meta["merged_from"]) == 2
    assert (tmp_path / "ray-run" / "default.h5").is_file()
    assert len(list((tmp_path / "ray-run" / "shards" / "default").glob("*.h5"))) == 2
