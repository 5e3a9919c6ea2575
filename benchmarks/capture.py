"""Capture throughput: ``drift.extract`` against a bare forward pass and a plain h5py write, measured in one run.

For two models, a tiny random llama (8 layers, d_model 256, built locally with ``tests/tiny.py``) and the default
SmolLM2-135M-Instruct (30 layers, d_model 576), this script times over the same bundled prompts
(``builtin:prompts``, spread over languages and labels) and the same length-sorted, left-padded batches:

- ``baseline``: a bare ``lm.model(**batch, use_cache=False)`` forward (logits at every position) under
  ``torch.inference_mode``, batches collated before the clock starts;
- ``hf last all-layers``: ``drift.extract`` with the ``hf`` backend, last position, every layer (encoding,
  provenance and the HDF5 write included);
- ``hf last half-depth``: the same with layers ``0 .. n_layers//2 - 1`` only (the backend stops the forward early);
- ``nnsight`` and ``transformer_lens`` backends on the ``hf last all-layers`` work, or ``skipped: <reason>`` when
  their modules are missing or fail;
- ``hf all-pos all-layers``: every real token at ``resid_post`` of every layer, reported in MB/s, next to
- ``h5py plain write``: the same bytes, dataset shapes and chunking written batch by batch straight with h5py.

Every row is warmed up once (one batch) before timing; rows are then timed round-robin, ``--repeats`` times, and
the best time is kept, so a background load hits every row alike. Each row reports prompts/s, real tokens/s and
its speed relative to the baseline of the same model in this run (``x base`` > 1 means faster); the all-position
row also reports MB/s and its ratio to the plain write. Targets are printed as PASS/FAIL lines; a missed target
never makes the script fail (it is a measurement, not a test). Stores go to a temporary folder and are deleted
after each row.

Run it from the repository root::

    python benchmarks/capture.py            # full run, a few minutes on 2 CPU cores
    python benchmarks/capture.py --quick    # fewer prompts and repeats, about a minute
    python benchmarks/capture.py --json bench.json --device cpu --dtype float32
"""

from __future__ import annotations

import argparse
import gc
import importlib
import importlib.util
import json
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run from a checkout without an installed package
    sys.path.append(str(REPO))

import drift  # noqa: E402
from drift.capture import encode_prompts  # noqa: E402
from drift.data import PromptSet  # noqa: E402
from drift.models.chat import collate  # noqa: E402

TINY = {"family": "llama", "n_layers": 8, "d_model": 256}
OPTIONAL_BACKENDS = {"nnsight": "drift.capture.nnsight_backend", "transformer_lens": "drift.capture.lens_backend"}


@dataclass
class Row:
    """One measured line of the table."""

    model: str
    name: str
    n_prompts: int = 0
    n_tokens: int = 0
    bytes: int = 0
    seconds: float | None = None
    times: list[float] = field(default_factory=list)
    skipped: str | None = None
    prompts_per_s: float | None = None
    tokens_per_s: float | None = None
    vs_baseline: float | None = None
    mb_per_s: float | None = None
    vs_h5py: float | None = None


@dataclass
class Case:
    """A row to time: ``run(warm)`` does the work once (on one batch when ``warm``); ``cleanup`` is untimed."""

    row: Row
    run: Callable[[bool], None]
    cleanup: Callable[[], None] = lambda: None


@dataclass
class Work:
    """One model and the prompts, encodings and batches every row of that model shares."""

    label: str
    lm: object
    prompts: PromptSet
    warm_prompts: PromptSet
    batch_size: int

    def __post_init__(self) -> None:
        self.encoded = encode_prompts(self.lm, self.prompts)
        self.n_tokens = sum(len(e.input_ids) for e in self.encoded)
        self.batches = self._batches(self.encoded)
        self.warm_batches = self._batches(encode_prompts(self.lm, self.warm_prompts))

    def _batches(self, encoded) -> list[list]:
        order = sorted(range(len(encoded)), key=lambda i: (-len(encoded[i].input_ids), i))  # as extract sorts
        return [[encoded[i] for i in order[s : s + self.batch_size]] for s in range(0, len(order), self.batch_size)]


# ----------------------------------------------------------------------------------------------------- helpers
def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:100]}" if text else type(exc).__name__


def spread(prompts: PromptSet, n: int) -> PromptSet:
    """Take ``n`` prompts evenly spread over the set (so languages and labels mix); all of them if fewer."""
    n = min(n, len(prompts))
    return PromptSet([prompts[int(i * len(prompts) / n)] for i in range(n)], prompts.name)


def load_tiny_module():
    """Import tests/tiny.py by path (``tests`` is not a package)."""
    spec = importlib.util.spec_from_file_location("_polydrift_tiny", REPO / "tests" / "tiny.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def optional_backend_problem(name: str) -> str | None:
    """None if the backend's module imports and the backend can be built, else why not."""
    try:
        importlib.import_module(OPTIONAL_BACKENDS[name])
        from drift.capture import get_backend

        get_backend(name)
    except Exception as exc:  # noqa: BLE001 - any failure means "skip this row"
        return _reason(exc)
    return None


# ----------------------------------------------------------------------------------------------------- cases
def baseline_case(work: Work) -> Case:
    lm = work.lm
    pad = lm.tokenizer.pad_token_id
    full = [collate(b, pad, "left", lm.device) for b in work.batches]
    warm = [collate(b, pad, "left", lm.device) for b in work.warm_batches]

    def run(is_warm: bool) -> None:
        with torch.inference_mode():
            for batch in warm if is_warm else full:
                lm.model(**batch, use_cache=False)
        _sync(lm.device)

    return Case(Row(work.label, "baseline (bare forward)", len(work.prompts), work.n_tokens), run)


def extract_case(work: Work, name: str, folder: Path, **config) -> Case:
    lm = work.lm
    cfg = drift.CaptureConfig(batch_size=work.batch_size, **config)
    out = folder / f"{work.label}-{name.replace(' ', '_')}.h5"

    def cleanup() -> None:
        for p in (out, out.with_name(out.name + ".partial"), out.with_name(out.name + ".lock")):
            p.unlink(missing_ok=True)

    def run(is_warm: bool) -> None:
        cleanup()
        drift.extract(lm, work.warm_prompts if is_warm else work.prompts, out, cfg, progress=False)
        _sync(lm.device)

    row = Row(work.label, name, len(work.prompts), work.n_tokens)
    if "all" in config.get("positions", ()):
        n_targets = len(config.get("sites", ("resid_post",))) * lm.n_layers
        row.bytes = work.n_tokens * n_targets * lm.d_model * 4
    return Case(row, run, cleanup)


def h5py_case(work: Work, folder: Path) -> Case:
    """Write what the all-position row writes (float32, one (tokens, d_model) dataset per layer) with bare h5py."""
    import h5py

    lm = work.lm
    d, n_layers, total = lm.d_model, lm.n_layers, work.n_tokens
    tok_per_chunk = max(1, min(total, (1 << 20) // (d * 4)))  # as drift/store/writer.py chunks ragged data
    rng = np.random.default_rng(0)
    blocks = [rng.standard_normal((sum(len(e.input_ids) for e in b), d), dtype=np.float32) for b in work.batches]
    out = folder / f"{work.label}-plain.h5"

    def run(is_warm: bool) -> None:
        todo = blocks[:1] if is_warm else blocks
        with h5py.File(out, "w", libver="latest") as h5:
            dsets = [
                h5.create_dataset(f"ragged/resid_post/{layer}", shape=(total, d), dtype="float32",
                                  chunks=(tok_per_chunk, d))
                for layer in range(n_layers)
            ]
            cursor = 0
            for block in todo:  # one write per dataset per batch, flushed per batch, as the store writer does
                for ds in dsets:
                    ds[cursor : cursor + block.shape[0]] = block
                cursor += block.shape[0]
                h5.flush()

    row = Row(work.label, "h5py plain write", len(work.prompts), work.n_tokens, bytes=total * n_layers * d * 4)
    return Case(row, run, lambda: out.unlink(missing_ok=True))


def build_cases(work: Work, folder: Path) -> list[Case]:
    lm = work.lm
    half = tuple(range(lm.n_layers // 2))
    cases = [
        baseline_case(work),
        extract_case(work, "hf last all-layers", folder, backend="hf"),
        extract_case(work, f"hf last layers 0-{half[-1]}", folder, backend="hf", layers=half),
    ]
    for name in OPTIONAL_BACKENDS:
        case = extract_case(work, f"{name} last all-layers", folder, backend=name)
        case.row.skipped = optional_backend_problem(name)
        cases.append(case)
    cases.append(extract_case(work, "hf all-pos all-layers", folder, backend="hf", positions=("all",)))
    cases.append(h5py_case(work, folder))
    return cases


# ----------------------------------------------------------------------------------------------------- timing
def measure(cases: list[Case], repeats: int, log: Callable[[str], None]) -> None:
    """Warm every case up once, then time them round-robin ``repeats`` times, keeping each one's best."""
    for case in cases:
        if case.row.skipped:
            continue
        try:
            case.run(True)
        except Exception as exc:  # noqa: BLE001 - an optional backend that fails is skipped, not fatal
            case.row.skipped = _reason(exc)
        finally:
            case.cleanup()
    for r in range(repeats):
        for case in cases:
            if case.row.skipped:
                continue
            gc.collect()
            t0 = time.perf_counter()
            try:
                case.run(False)
            except Exception as exc:  # noqa: BLE001
                case.row.skipped = _reason(exc)
                continue
            finally:
                dt = time.perf_counter() - t0
                case.cleanup()
            case.row.times.append(dt)
        log(f"  round {r + 1}/{repeats} done")
    for case in cases:
        row = case.row
        if row.skipped or not row.times:
            continue
        row.seconds = min(row.times)
        row.prompts_per_s = row.n_prompts / row.seconds
        row.tokens_per_s = row.n_tokens / row.seconds
        if row.bytes:
            row.mb_per_s = row.bytes / row.seconds / 1e6


def derive(rows: list[Row]) -> None:
    """Fill the ratios: speed against the model's baseline; MB/s against the plain h5py write."""
    by_name = {r.name: r for r in rows}
    base = rows[0]
    plain = by_name.get("h5py plain write")
    for row in rows:
        if row.seconds is None:
            continue
        if base.seconds and row.name != "h5py plain write":
            row.vs_baseline = base.seconds / row.seconds
        if row.mb_per_s is not None and plain is not None and plain.mb_per_s and row is not plain:
            row.vs_h5py = row.mb_per_s / plain.mb_per_s


# ----------------------------------------------------------------------------------------------------- report
def _fmt(x: float | None, spec: str) -> str:
    return "" if x is None else format(x, spec)


def table(rows: list[Row]) -> str:
    head = ["model", "row", "best s", "prompts/s", "tokens/s", "x base", "MB/s", "x h5py"]
    body = []
    for r in rows:
        if r.skipped:
            body.append([r.model, r.name, f"skipped: {r.skipped}"])
            continue
        body.append([
            r.model, r.name, _fmt(r.seconds, ".3f"),
            _fmt(r.prompts_per_s, ".1f") if r.name != "h5py plain write" else "",
            _fmt(r.tokens_per_s, ".0f") if r.name != "h5py plain write" else "",
            _fmt(r.vs_baseline, ".2f"), _fmt(r.mb_per_s, ".1f"), _fmt(r.vs_h5py, ".2f"),
        ])
    widths = [max(len(head[i]), *(len(b[i]) for b in body if len(b) > 3 or i < 2)) for i in range(len(head))]
    right = {2, 3, 4, 5, 6, 7}

    def line(cells: list[str]) -> str:
        if len(cells) == 3:  # a skipped row: the reason spans the numeric columns
            return "  ".join([cells[0].ljust(widths[0]), cells[1].ljust(widths[1]), cells[2]])
        return "  ".join(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths)))

    rule = "-" * len(line(head))
    return "\n".join([line(head), rule, *(line(b) for b in body)])


def targets(rows: list[Row]) -> list[dict]:
    """The four targets of one model, each PASS, FAIL or SKIP with the measured value."""
    model = rows[0].model
    by_name = {r.name: r for r in rows}
    hf_all = by_name["hf last all-layers"]
    hf_half = next(r for r in rows if r.name.startswith("hf last layers"))
    allpos = by_name["hf all-pos all-layers"]
    out = []

    def add(name: str, ok: bool | None, detail: str) -> None:
        out.append({"model": model, "target": name, "result": {True: "PASS", False: "FAIL", None: "SKIP"}[ok],
                    "detail": detail})

    def ratio_target(row: Row, need: float) -> None:
        name = f"{row.name} >= {need:.1f}x baseline"
        if row.vs_baseline is None:
            add(name, None, f"not measured ({row.skipped})")
        else:
            add(name, row.vs_baseline >= need, f"{row.vs_baseline:.2f}x")

    ratio_target(hf_all, 1.0)
    ratio_target(hf_half, 1.5)
    others = [by_name[f"{n} last all-layers"] for n in OPTIONAL_BACKENDS]
    measured = [r for r in others if r.seconds is not None]
    name = "hf faster than nnsight and transformer_lens"
    if hf_all.seconds is None or not measured:
        add(name, None, "no other backend measured: " + "; ".join(f"{r.name.split()[0]} {r.skipped}" for r in others))
    else:
        ok = all(hf_all.seconds < r.seconds for r in measured)
        detail = ", ".join(f"{r.name.split()[0]} {r.seconds / hf_all.seconds:.2f}x slower" for r in measured)
        missing = [r.name.split()[0] for r in others if r.seconds is None]
        add(name, ok, detail + (f" ({', '.join(missing)} skipped)" if missing else ""))
    # Capturing all positions runs the same forward as capturing the last one; what it adds is the gathering and
    # writing of every token. That extra time, next to a plain h5py write of the same bytes, says whether the disk
    # or Python is the limit.
    name = "all-position write cost within 2x of a plain h5py write"
    plain = by_name["h5py plain write"]
    if None in (allpos.seconds, hf_all.seconds, plain.seconds):
        add(name, None, "not measured")
    else:
        extra = max(allpos.seconds - hf_all.seconds, 0.0)
        add(name, extra <= 2 * plain.seconds + 0.05 * hf_all.seconds,
            f"+{extra:.3f} s over last-position capture vs {plain.seconds:.3f} s plain write of "
            f"{allpos.bytes / 1e6:.1f} MB (total {allpos.mb_per_s:.1f} MB/s incl. the forward; plain "
            f"{plain.mb_per_s:.1f} MB/s)")
    return out


def notes(rows: list[Row]) -> list[str]:
    """Where the all-position time goes: its extra over the last-position row, as MB/s of the extra time."""
    by_name = {r.name: r for r in rows}
    allpos, last = by_name["hf all-pos all-layers"], by_name["hf last all-layers"]
    plain = by_name["h5py plain write"]
    if None in (allpos.seconds, last.seconds, plain.seconds):
        return []
    extra = allpos.seconds - last.seconds
    text = (f"[{rows[0].model}] all-pos costs {extra:+.3f} s over last-position capture (same forward); "
            f"the plain write of its {allpos.bytes / 1e6:.1f} MB takes {plain.seconds:.3f} s")
    if extra > 0:
        text += f"; {allpos.bytes / extra / 1e6:.1f} MB/s counted against the extra time only"
    return [text]


# ----------------------------------------------------------------------------------------------------- main
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--quick", action="store_true", help="fewer prompts and one repeat (about a minute)")
    p.add_argument("--json", type=Path, help="also write the results as JSON to this path")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default auto)")
    p.add_argument("--dtype", default="float32", help="compute dtype (default float32)")
    p.add_argument("--batch-size", type=int, default=16, help="prompts per forward pass (default 16)")
    p.add_argument("--tiny-prompts", type=int, help="prompts for the tiny model (default 384, quick 64)")
    p.add_argument("--default-prompts", type=int, help="prompts for SmolLM2 (default 64, quick 32)")
    p.add_argument("--repeats", type=int, help="timed rounds per row, best kept (default 3, quick 1)")
    p.add_argument("--skip-default", action="store_true", help="measure the tiny model only")
    args = p.parse_args(argv)
    args.tiny_prompts = args.tiny_prompts or (64 if args.quick else 384)
    args.default_prompts = args.default_prompts or (32 if args.quick else 64)
    args.repeats = args.repeats or (1 if args.quick else 3)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()

    def log(msg: str) -> None:
        print(f"[{time.perf_counter() - started:6.1f}s] {msg}", file=sys.stderr, flush=True)

    all_prompts = drift.load_prompts("builtin:prompts")
    results: list[Row] = []
    verdicts: list[dict] = []
    blocks: list[str] = []
    with tempfile.TemporaryDirectory(prefix="polydrift-bench-") as tmp:
        folder = Path(tmp)
        specs = [("tiny", args.tiny_prompts)] + ([] if args.skip_default else [("default", args.default_prompts)])
        for label, n in specs:
            log(f"loading {label} model")
            if label == "tiny":
                tiny_dir = folder / "tiny-llama"
                tiny_dir.mkdir()
                load_tiny_module().save_tiny(TINY["family"], tiny_dir, n_layers=TINY["n_layers"],
                                             d_model=TINY["d_model"])
                lm = drift.load_model(str(tiny_dir), dtype=args.dtype, device=args.device)
            else:
                lm = drift.load_model("default", dtype=args.dtype, device=args.device)
            prompts = spread(all_prompts, n)
            work = Work(label, lm, prompts, prompts[: args.batch_size], args.batch_size)
            log(f"{label}: {lm.n_layers} layers, d_model {lm.d_model}, {len(prompts)} prompts, "
                f"{work.n_tokens} tokens, {len(work.batches)} batches; timing {args.repeats} round(s)")
            cases = build_cases(work, folder)
            measure(cases, args.repeats, log)
            rows = [c.row for c in cases]
            derive(rows)
            results += rows
            verdicts += targets(rows)
            blocks += notes(rows)
            del cases, work, lm
            gc.collect()
    print()
    print(f"polydrift {drift.__version__} capture benchmark: torch {torch.__version__}, {torch.get_num_threads()} "
          f"threads, device {args.device}, dtype {args.dtype}, batch {args.batch_size}, best of {args.repeats}")
    print(table(results))
    print()
    for note in blocks:
        print(note)
    print()
    for v in verdicts:
        print(f"{v['result']:4}  [{v['model']}] {v['target']}: {v['detail']}")
    log("done")
    if args.json:
        payload = {
            "env": {"polydrift": drift.__version__, "torch": torch.__version__, "python": platform.python_version(),
                    "threads": torch.get_num_threads(), "machine": platform.machine(), "device": args.device,
                    "dtype": args.dtype},
            "config": {"batch_size": args.batch_size, "repeats": args.repeats, "quick": args.quick,
                       "tiny": TINY, "tiny_prompts": args.tiny_prompts, "default_prompts": args.default_prompts},
            "rows": [asdict(r) for r in results],
            "targets": verdicts,
            "notes": blocks,
        }
        args.json.write_text(json.dumps(payload, indent=2))
        log(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
