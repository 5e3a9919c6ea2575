"""The judging stage: completions in, ``judgments.jsonl``, ``coherence.jsonl`` and ASR/agreement tables out.

Each judge's records are appended batch by batch and flushed, so an interrupted run resumes where it stopped:
(run_id, id, judge) triples already written are skipped, and so are coherence records already written.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import pandas as pd

from drift.errors import DriftError
from drift.judge.base import Judge, JudgeItem, Judgment
from drift.judge.registry import make_judge

OUTPUTS = ("judgments.jsonl", "coherence.jsonl", "verdicts.csv", "asr.csv", "agreement.csv", "judge.meta.json")


def _read_jsonl(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):  # an interrupted write: drop the torn line
        data = data[: data.rfind(b"\n") + 1]
        path.write_bytes(data)
    return [json.loads(line) for line in data.decode("utf-8").splitlines() if line.strip()]


def _append(path: Path, records: Iterable[dict]) -> None:
    with open(path, "a", encoding="utf-8") as fh:
        for rec in records:
            fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def load_completion_records(paths: str | Path | Sequence[str | Path]) -> list[dict]:
    """Read one or more ``completions.jsonl`` files, checking the fields judging needs."""
    from drift.generate import read_completions

    paths = [paths] if isinstance(paths, (str, Path)) else list(paths)
    recs = []
    for p in paths:
        for n, rec in enumerate(read_completions(p), 1):
            missing = {"id", "prompt", "completion"} - set(rec)
            if missing:
                raise DriftError(f"{p} record {n} lacks {sorted(missing)}: completions need id, prompt, completion")
            rec.setdefault("run_id", Path(p).stem)
            recs.append(rec)
    keys = [(r["run_id"], r["id"]) for r in recs]
    if len(set(keys)) != len(keys):
        raise DriftError("the completions hold the same (run_id, id) twice: pass each completions file once")
    return recs


def _run_judge(judge: Judge, items: list[JudgeItem], path: Path, batch_size: int, progress: bool) -> None:
    from tqdm.auto import tqdm

    done = {(r.get("run_id"), r["id"]) for r in _read_jsonl(path) if r.get("judge") == judge.name}
    todo = [it for it in items if (it.run_id, it.id) not in done]
    for start in tqdm(range(0, len(todo), batch_size), disable=not progress, desc=judge.name):
        batch = todo[start:start + batch_size]
        results = judge.judge(batch)
        if len(results) != len(batch):
            raise DriftError(f"judge {judge.name} returned {len(results)} verdicts for {len(batch)} items")
        _append(path, (j.to_record() for j in results))


def _run_coherence(items: list[JudgeItem], path: Path, config, reference, batch_size: int) -> None:
    from drift.judge.coherence import check_all

    done = {(r.get("run_id"), r["id"]) for r in _read_jsonl(path)}
    todo = [it for it in items if (it.run_id, it.id) not in done]
    for start in range(0, len(todo), batch_size):
        _append(path, (c.to_record() for c in check_all(todo[start:start + batch_size], config, reference)))


def _adjudicate(spec, adjudicator: Judge, items: list[JudgeItem], path: Path) -> None:
    from drift.judge.ensemble import adjudicate

    first, second, _ = spec
    name = f"adjudicated({first},{second}|{adjudicator.name})"
    recs = _read_jsonl(path)
    by = {(r.get("run_id"), r["id"], r["judge"]): r for r in recs}
    items = [it for it in items if (it.run_id, it.id, name) not in by]
    if not items:
        return

    def get(judge: str) -> list[Judgment]:
        return [Judgment(it.id, judge, by[(it.run_id, it.id, judge)]["verdict"], it.run_id) for it in items]

    result = adjudicate(get(first), get(second), lambda idx: adjudicator.judge([items[i] for i in idx]), name)
    _append(path, (j.to_record() for j in result))


def judge_completions(
    completions: str | Path | Sequence[str | Path],
    judges: Sequence[str | Judge],
    out: str | Path,
    judge_options: dict[str, dict] | None = None,
    majority: bool = False,
    adjudicate: tuple[str, str, str | Judge] | None = None,
    coherence: bool = True,
    coherence_config=None,
    reference=None,
    batch_size: int = 32,
    progress: bool = True,
) -> dict[str, Path]:
    """Judge completions with several judges, flag coherence, and write the ASR and agreement tables.

    Args:
        completions: One or more ``completions.jsonl`` files (several runs give paired ASR-change tests).
        judges: Judge names (see :func:`drift.judge.judge_names`) or judge objects.
        out: Output folder; rerunning into it resumes and recomputes the tables.
        judge_options: Options per judge name, e.g. ``{"llm": {"base_url": ..., "model": ...}}``.
        majority: Add a majority-vote judge over ``judges``.
        adjudicate: ``(first, second, adjudicator)`` judge names (the first two among ``judges``; the adjudicator
            may also be a judge object): the RefusEU
            protocol; the adjudicator runs only where the first two disagree.
        coherence: Run the coherence and language-consistency pass (its ``incoherent`` overrides verdicts in ASR).
        coherence_config: A :class:`~drift.judge.coherence.CoherenceConfig`.
        reference: A loaded reference model for perplexity in the coherence pass.
        batch_size: Items per judge call (and per flushed write).
        progress: Show progress bars.

    Returns:
        Paths of the written files by name.
    """
    recs = load_completion_records(completions)
    if not recs:
        raise DriftError("the completions file is empty: generate completions first")
    if not judges:
        raise DriftError("no judges given: pass at least one, e.g. --judges refusal-lexicon")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    items = [JudgeItem.from_record(r) for r in recs]
    options = judge_options or {}
    built = {}
    for j in judges:
        judge = make_judge(j, **options.get(j, {})) if isinstance(j, str) else j
        built[judge.name] = judge
    adjudicator = None
    if adjudicate is not None:
        missing = [n for n in adjudicate[:2] if n not in built]
        if missing:
            raise DriftError(f"adjudication needs judges {missing} in --judges too")
        adj = adjudicate[2]
        adjudicator = (built.get(adj) or make_judge(adj, **options.get(adj, {}))) if isinstance(adj, str) else adj
    path = out / "judgments.jsonl"
    for judge in built.values():
        _run_judge(judge, items, path, batch_size, progress)
    if adjudicate is not None:
        _adjudicate(adjudicate, adjudicator, items, path)
    if coherence:
        _run_coherence(items, out / "coherence.jsonl", coherence_config, reference, batch_size)
    _write_meta(out, completions, {**built, **({adjudicator.name: adjudicator} if adjudicator else {})},
                adjudicate and [*adjudicate[:2], adjudicator.name], coherence_config)
    return write_tables(out, recs, majority=list(built) if majority else None)


def write_tables(out: str | Path, completions: list[dict], majority: list[str] | None = None) -> dict[str, Path]:
    """(Re)compute ``verdicts.csv``, ``asr.csv``, ``agreement.csv`` and ``asr_change.csv`` from the records in ``out``."""
    from drift.judge import asr

    out = Path(out)
    comp = pd.DataFrame(completions)
    for col in ("lang", "label", "category"):
        if col not in comp:
            comp[col] = {"lang": "en", "label": "harmful", "category": None}[col]
    judgments = pd.DataFrame(_read_jsonl(out / "judgments.jsonl"))
    coh = pd.DataFrame(_read_jsonl(out / "coherence.jsonl"))
    verdicts = asr.final_verdicts(judgments, coh if len(coh) else None, comp)
    if majority:
        maj = asr.majority(verdicts, majority)
        verdicts = pd.concat([verdicts, asr.final_verdicts(maj, coh if len(coh) else None, comp)], ignore_index=True)
    written = {}
    for name, df in [("verdicts.csv", verdicts), ("asr.csv", asr.asr_table(verdicts)),
                     ("agreement.csv", asr.judge_agreement(verdicts))]:
        df.to_csv(out / name, index=False)
        written[name] = out / name
    runs = list(dict.fromkeys(comp["run_id"]))
    if len(runs) > 1:
        changes = [asr.asr_change(verdicts, a, b) for a, b in zip([runs[0]] * (len(runs) - 1), runs[1:])]
        pd.concat(changes, ignore_index=True).to_csv(out / "asr_change.csv", index=False)
        written["asr_change.csv"] = out / "asr_change.csv"
    written["judgments.jsonl"] = out / "judgments.jsonl"
    return written


def _write_meta(out: Path, completions, judges: dict[str, Judge], adjudicate, coherence_config) -> None:
    from dataclasses import asdict

    from drift._version import __version__

    files = [completions] if isinstance(completions, (str, Path)) else list(completions)
    meta = {"polydrift_version": __version__, "completions": [str(Path(f).resolve()) for f in files],
            "judges": {n: j.config() for n, j in judges.items()}, "adjudicate": adjudicate,
            "coherence": asdict(coherence_config) if coherence_config is not None else "default",
            "contains_harmful_text": True}
    tmp = out / "judge.meta.json.tmp"
    tmp.write_text(json.dumps(meta, indent=2, default=str), encoding="utf-8")
    os.replace(tmp, out / "judge.meta.json")
