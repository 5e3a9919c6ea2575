"""Writing an activation store: through a temporary file, flushed per batch, resumable, one writer at a time."""

from __future__ import annotations

import datetime as _dt
import fcntl
import json
import os
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from drift._version import __version__
from drift.errors import DriftError
from drift.store import layout as L


@dataclass(frozen=True)
class StorePlan:
    """Everything fixed before the first batch is written.

    Attributes:
        prompts: Prompt records (dicts with the record columns) in prompt order.
        n_tokens: Token count of each prompt (prompt order).
        instr_span: (start, end) token span of the instruction in each prompt (prompt order).
        order: Processing order: ``order[k]`` is the prompt row stored at row ``k``.
        sites: Site names.
        layers: Layer indices.
        positions: Labels of the fixed position axis (may be empty when only ``all`` is captured).
        ragged: Whether all positions are captured too.
        d_model: Residual width.
        dtype: Storage dtype name.
        provenance: JSON-ready provenance (model, run, prompts, capture config).
        shard_rows: For a shard of a larger prompt set, the full-set row of each prompt (prompt order); else None.
    """

    prompts: list[dict]
    n_tokens: list[int]
    instr_span: list[tuple[int, int]]
    order: list[int]
    sites: list[str]
    layers: list[int]
    positions: list[str | int]
    ragged: bool
    d_model: int
    dtype: str
    provenance: dict
    shard_rows: list[int] | None = None


def partial_path(path: Path) -> Path:
    """Temporary name an extraction writes to before the final rename."""
    return path.with_name(path.name + ".partial")


class StoreWriter:
    """Writes batches of activations in processing order; :meth:`finish` renames the file into place.

    Use :meth:`open` rather than the constructor.
    """

    def __init__(self, path: Path, h5: h5py.File, lock_fd: int, plan: StorePlan) -> None:
        self.path, self.h5, self._lock_fd, self.plan = path, h5, lock_fd, plan
        self.committed = int(h5.attrs["committed"])
        self._token_cursor = int(self._offsets()[self.committed]) if plan.ragged else 0

    # ----------------------------------------------------------------- opening
    @classmethod
    def open(cls, path: str | Path, plan: StorePlan, resume: bool = False, overwrite: bool = False) -> StoreWriter:
        """Start (or resume) writing ``path``; refuses an existing output unless ``overwrite``.

        Raises:
            DriftError: The output exists, another process is writing it, or a resumed file does not match ``plan``.
        """
        path = Path(path)
        if path.exists() and not overwrite:
            raise DriftError(f"output {path} already exists: choose another --out, or pass --overwrite to replace it")
        if path.is_dir():
            raise DriftError(f"output {path} is a directory: give a file name such as acts.h5")
        if not path.parent.is_dir():
            raise DriftError(f"output folder {path.parent} does not exist: create it first")
        lock_fd = _lock(path)
        try:
            tmp = partial_path(path)
            if resume and tmp.exists():
                h5 = _reopen(tmp, plan)
            else:
                if tmp.exists():
                    tmp.unlink()
                h5 = _create(tmp, plan)
        except BaseException:
            _unlock(path, lock_fd)
            raise
        return cls(path, h5, lock_fd, plan)

    # ----------------------------------------------------------------- writing
    def _offsets(self) -> np.ndarray:
        return self.h5["ragged/offsets"][()]

    def write_batch(
        self,
        n_rows: int,
        fixed: dict[tuple[str, int], np.ndarray],
        ragged: dict[tuple[str, int], np.ndarray] | None = None,
    ) -> None:
        """Append the next ``n_rows`` rows of the processing order and flush, then advance ``committed``.

        Args:
            n_rows: Prompts in this batch.
            fixed: (site, layer) -> float32 array (n_rows, n_positions, d_model).
            ragged: (site, layer) -> float32 array (sum of the batch's token counts, d_model), prompts concatenated
                in processing order.
        """
        start, t0 = self.committed, self._token_cursor
        for (site, layer), arr in fixed.items():
            self.h5[L.acts_path(site, layer)][start : start + n_rows] = _checked(arr, self.plan.dtype, site, layer)
        n_tok = 0
        for (site, layer), arr in (ragged or {}).items():
            n_tok = arr.shape[0]
            self.h5[L.ragged_path(site, layer)][t0 : t0 + n_tok] = _checked(arr, self.plan.dtype, site, layer)
        self.h5.flush()  # data first, then the counter that makes it count
        self.committed, self._token_cursor = start + n_rows, t0 + n_tok
        self.h5.attrs["committed"] = self.committed
        self.h5.flush()

    def finish(self) -> Path:
        """Mark the store complete, close it and rename it to its final name."""
        if self.committed != len(self.plan.prompts):
            raise DriftError(f"store has {self.committed} of {len(self.plan.prompts)} rows: extraction is incomplete")
        self.h5.attrs["complete"] = True
        self.h5.close()
        os.replace(partial_path(self.path), self.path)
        _unlock(self.path, self._lock_fd)
        return self.path

    def abort(self) -> None:
        """Close without finishing; the partial file stays for ``--resume``."""
        try:
            self.h5.close()
        finally:
            _unlock(self.path, self._lock_fd)


def _checked(arr: np.ndarray, dtype: str, site: str, layer: int) -> np.ndarray:
    if not np.isfinite(arr).all():
        raise DriftError(
            f"non-finite activations at {site} layer {layer}: the model overflowed in its compute dtype; "
            "rerun with --dtype float32 (or bfloat16 for Gemma)"
        )
    if dtype == "float16":
        peak = float(np.abs(arr).max()) if arr.size else 0.0
        if peak > L.FLOAT16_MAX:
            raise DriftError(
                f"activations at {site} layer {layer} reach {peak:.3g}, beyond float16's range: "
                "store them with --storage-dtype float32 or bfloat16"
            )
    return L.to_storage(arr, dtype)


def _lock(path: Path) -> int:
    fd = os.open(path.with_name(path.name + ".lock"), os.O_CREAT | os.O_RDWR, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise DriftError(f"another process is writing {path}: wait for it to finish or choose another --out") from None
    os.ftruncate(fd, 0)
    os.write(fd, str(os.getpid()).encode())
    return fd


def _unlock(path: Path, fd: int) -> None:
    try:
        path.with_name(path.name + ".lock").unlink(missing_ok=True)
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def _strings(values: list[str]) -> np.ndarray:
    return np.array(values, dtype=h5py.string_dtype("utf-8"))


def _plan_fingerprint(plan: StorePlan) -> str:
    payload = {
        "prompts": plan.provenance.get("prompts"),
        "capture": plan.provenance.get("capture"),
        "run": plan.provenance.get("run"),
        "order": plan.order,
    }
    return json.dumps(payload, sort_keys=True)


def _create(tmp: Path, plan: StorePlan) -> h5py.File:
    n = len(plan.prompts)
    h5 = h5py.File(tmp, "w")  # no SWMR superblock: its open-for-write flag would block --resume after a crash
    h5.attrs.update(
        {
            "encoding-type": L.ENCODING_TYPE,
            "encoding-version": L.ENCODING_VERSION,
            "polydrift_version": __version__,
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "n_prompts": n,
            "d_model": plan.d_model,
            "storage_dtype": plan.dtype,
            "committed": 0,
            "complete": False,
            "provenance": json.dumps(plan.provenance, sort_keys=True),
            "plan_fingerprint": _plan_fingerprint(plan),
        }
    )
    g = h5.create_group("prompts")
    for col in L.PROMPT_COLUMNS:
        g.create_dataset(col, data=_strings([str(p[col]) for p in plan.prompts]))
    g.create_dataset("n_tokens", data=np.asarray(plan.n_tokens, dtype=np.int32))
    g.create_dataset("instr_span", data=np.asarray(plan.instr_span, dtype=np.int32).reshape(n, 2))
    h5.create_dataset("order", data=np.asarray(plan.order, dtype=np.int64))
    if plan.shard_rows is not None:
        h5.create_dataset(L.SHARD_ROWS, data=np.asarray(plan.shard_rows, dtype=np.int64))
    h5.create_dataset("positions", data=_strings([L.encode_position(p) for p in plan.positions]))
    h5.attrs["sites"] = json.dumps(plan.sites)
    h5.attrs["layers"] = json.dumps(plan.layers)
    item = L.h5_dtype(plan.dtype).itemsize
    n_pos = len(plan.positions)
    if n_pos:
        rows_per_chunk = max(1, min(n, (1 << 20) // max(1, n_pos * plan.d_model * item)))
        for site in plan.sites:
            for layer in plan.layers:
                ds = h5.create_dataset(
                    L.acts_path(site, layer),
                    shape=(n, n_pos, plan.d_model),
                    dtype=L.h5_dtype(plan.dtype),
                    chunks=(rows_per_chunk, n_pos, plan.d_model),
                )
                ds.attrs["dtype"] = plan.dtype
    if plan.ragged:
        counts = np.asarray(plan.n_tokens, dtype=np.int64)[np.asarray(plan.order, dtype=np.int64)]
        offsets = np.concatenate([[0], np.cumsum(counts)])
        h5.create_dataset("ragged/offsets", data=offsets)
        total = int(offsets[-1])
        tok_per_chunk = max(1, min(total, (1 << 20) // (plan.d_model * item)))
        for site in plan.sites:
            for layer in plan.layers:
                ds = h5.create_dataset(
                    L.ragged_path(site, layer),
                    shape=(total, plan.d_model),
                    dtype=L.h5_dtype(plan.dtype),
                    chunks=(tok_per_chunk, plan.d_model),
                )
                ds.attrs["dtype"] = plan.dtype
    h5.flush()
    return h5


def _reopen(tmp: Path, plan: StorePlan) -> h5py.File:
    try:
        h5 = h5py.File(tmp, "r+")
    except OSError:
        raise DriftError(f"the partial file {tmp} is damaged and cannot be resumed: rerun without --resume") from None
    if h5.attrs.get("plan_fingerprint") != _plan_fingerprint(plan):
        h5.close()
        raise DriftError(
            f"cannot resume {tmp}: it was started with another model, prompt set or capture settings; "
            "rerun with the same arguments, or without --resume to start over"
        )
    return h5
