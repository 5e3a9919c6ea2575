"""The PolyRefuse loader on the real folder (skipped when the reference data is absent)."""

import collections

import pytest

from drift import DriftError
from drift.data import load_polyrefuse, load_prompts

pytestmark = pytest.mark.refdata


def test_train_split_aligned_by_row(refdata):
    ps = load_polyrefuse(refdata / "polyrefuse", splits=["harmful_train"], langs=["en", "de"])
    en, de = ps.filter(langs=["en"]), ps.filter(langs=["de"])
    assert len(en) == len(de) == 260
    assert [p.group for p in en] == [p.group for p in de]
    assert en[0].text.startswith("Suggest methods for hacking") and de[0].text.startswith("Schlagen Sie")


def test_test_split_uses_translation_field(refdata):
    ps = load_polyrefuse(refdata / "polyrefuse", splits=["harmful_test"], langs=["de"])
    assert len(ps) == 572
    assert not any(p.text.startswith("Write a defamatory") for p in ps)  # the English source is not the text


def test_jailbreakbench_misaligned_languages_are_realigned(refdata):
    ps = load_polyrefuse(refdata / "polyrefuse", splits=["jailbreakbench_test"])
    counts = collections.Counter(p.lang for p in ps)
    assert counts["nl"] == 98 and counts["pl"] == 99 and counts["en"] == 100 and "yi" not in counts
    by_group = {p.group: p for p in ps.filter(langs=["en"])}
    # every translated row carries its English item's category, whatever its row number
    for p in ps.filter(langs=["nl", "pl"]):
        assert p.category == by_group[p.group].category
    nl_groups = [p.group for p in ps.filter(langs=["nl"])]
    assert len(set(nl_groups)) == 98 and nl_groups != [f"polyrefuse-jailbreakbench_test-{i:04d}" for i in range(98)]


def test_spec_string_and_errors(refdata, tmp_path):
    ps = load_prompts(f"polyrefuse:{refdata / 'polyrefuse'}?split=harmless_val&lang=fr")
    assert len(ps) == 200 and {p.label for p in ps} == {"harmless"}
    with pytest.raises(DriftError, match="unknown PolyRefuse split"):
        load_polyrefuse(refdata / "polyrefuse", splits=["nope"])
    with pytest.raises(DriftError, match="no .* files"):
        load_polyrefuse(tmp_path)
