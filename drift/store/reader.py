"""Reading an activation store without loading it whole."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

import h5py
import numpy as np

from drift.errors import DriftError
from drift.runs import RunManifest
from drift.store import layout as L

if TYPE_CHECKING:
    import pandas as pd


class ActivationStore:
    """A read-only view of one ``.h5`` activation store (layout: docs/store-spec.md).

    Rows are addressed in prompt order (the order of :attr:`prompts`), whatever order they were computed in.

    Example:
        >>> with open_store("acts.h5") as store:  # doctest: +SKIP
        ...     x = store.read("resid_post", 12, positions=["last"], langs=["de"])
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise DriftError(f"activation store not found: {self.path}")
        try:
            self._h5 = h5py.File(self.path, "r")
        except OSError:
            raise DriftError(f"{self.path} is not a readable HDF5 file: was the extraction interrupted?") from None
        attrs = self._h5.attrs
        if attrs.get("encoding-type") != L.ENCODING_TYPE:
            self.close()
            raise DriftError(f"{self.path} is not a polydrift activation store (no encoding-type attribute)")
        version = str(attrs.get("encoding-version"))
        if version not in L.READABLE_VERSIONS:
            self.close()
            raise DriftError(f"{self.path} uses store layout {version}; this polydrift reads {L.READABLE_VERSIONS}")
        self.storage_dtype: str = str(attrs["storage_dtype"])
        self._order = self._h5["order"][()]
        self._inverse = np.empty_like(self._order)
        self._inverse[self._order] = np.arange(len(self._order))

    # ---------------------------------------------------------------- metadata
    def __enter__(self) -> ActivationStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Close the file."""
        self._h5.close()

    def __repr__(self) -> str:
        return (
            f"ActivationStore({str(self.path)!r}, n_prompts={self.n_prompts}, sites={self.sites}, "
            f"layers={self.layers[0]}..{self.layers[-1]}, positions={self.positions}, dtype={self.storage_dtype})"
        )

    @property
    def n_prompts(self) -> int:
        """Number of prompt rows."""
        return int(self._h5.attrs["n_prompts"])

    @property
    def d_model(self) -> int:
        """Residual width."""
        return int(self._h5.attrs["d_model"])

    @property
    def complete(self) -> bool:
        """True once every row was written."""
        return bool(self._h5.attrs["complete"])

    @property
    def sites(self) -> list[str]:
        """Captured sites."""
        return json.loads(self._h5.attrs["sites"])

    @property
    def layers(self) -> list[int]:
        """Captured layers, ascending."""
        return sorted(json.loads(self._h5.attrs["layers"]))

    @property
    def positions(self) -> list[str | int]:
        """Labels of the position axis: ``last``, ``mean`` or negative offsets (-k..-1 post-instruction tokens)."""
        return [L.decode_position(x.decode() if isinstance(x, bytes) else x) for x in self._h5["positions"][()]]

    @property
    def has_ragged(self) -> bool:
        """True when all positions were captured (see :meth:`read_ragged`)."""
        return "ragged" in self._h5

    @property
    def shard_rows(self) -> np.ndarray | None:
        """For a shard store (``drift extract --shard``), the full-set row of each prompt row; else None."""
        return self._h5[L.SHARD_ROWS][()] if L.SHARD_ROWS in self._h5 else None

    @cached_property
    def provenance(self) -> dict:
        """Provenance recorded at extraction: package version, model, run, prompts, capture settings."""
        return json.loads(self._h5.attrs["provenance"])

    @property
    def run(self) -> RunManifest:
        """The run manifest of the model state captured."""
        return RunManifest.from_dict(self.provenance["run"])

    @cached_property
    def prompts(self) -> pd.DataFrame:
        """The prompt table in row order, with ``n_tokens``."""
        import pandas as pd

        g = self._h5["prompts"]
        data = {c: g[c].asstr()[()] for c in L.PROMPT_COLUMNS}
        data["n_tokens"] = g["n_tokens"][()]
        return pd.DataFrame(data)

    # ---------------------------------------------------------------- selection
    def select_rows(
        self,
        langs: Iterable[str] | None = None,
        labels: Iterable[str] | None = None,
        rows: Iterable[int] | None = None,
    ) -> np.ndarray:
        """Prompt-order row indices matching the filters (all rows when none is given)."""
        df = self.prompts
        mask = np.ones(len(df), dtype=bool)
        if rows is not None:
            idx = np.asarray(list(rows), dtype=np.int64)
            if idx.size and (idx.min() < 0 or idx.max() >= len(df)):
                raise DriftError(f"row index out of range: the store has {len(df)} rows")
            mask[:] = False
            mask[idx] = True
        if langs is not None:
            mask &= df["lang"].isin(list(langs)).to_numpy()
        if labels is not None:
            mask &= df["label"].isin(list(labels)).to_numpy()
        if rows is not None and langs is None and labels is None:
            return idx
        return np.flatnonzero(mask)

    def _position_index(self, positions: Iterable[str | int] | None) -> list[int]:
        labels = self.positions
        if positions is None:
            return list(range(len(labels)))
        out = []
        for p in positions:
            key = L.decode_position(str(p))
            if key not in labels:
                raise DriftError(f"position {p!r} is not in this store: it has {labels}")
            out.append(labels.index(key))
        return out

    def _dataset(self, site: str, layer: int, ragged: bool = False) -> h5py.Dataset:
        if site not in self.sites:
            raise DriftError(f"site {site!r} is not in this store: it has {self.sites}")
        if int(layer) not in self.layers:
            raise DriftError(f"layer {layer} is not in this store: it has layers {self.layers}")
        path = L.ragged_path(site, int(layer)) if ragged else L.acts_path(site, int(layer))
        if path not in self._h5:
            what = "all positions (extract with --positions all)" if ragged else "fixed positions"
            raise DriftError(f"this store has no {what} for {site} layer {layer}")
        return self._h5[path]

    # ---------------------------------------------------------------- reading
    def read(
        self,
        site: str,
        layer: int,
        positions: Iterable[str | int] | None = None,
        langs: Iterable[str] | None = None,
        labels: Iterable[str] | None = None,
        rows: Iterable[int] | None = None,
        as_torch: bool = False,
    ):
        """Read activations shaped (n_rows, n_positions, d_model) in prompt order, as float32.

        Args:
            site: ``resid_pre``, ``resid_mid`` or ``resid_post``.
            layer: Layer index.
            positions: Position labels to keep (default: all of :attr:`positions`).
            langs: Languages to keep.
            labels: Labels to keep.
            rows: Prompt-order row indices to keep (order is preserved).
            as_torch: Return a torch tensor instead of a numpy array.
        """
        ds = self._dataset(site, layer)
        pos = self._position_index(positions)
        sel = self.select_rows(langs, labels, rows)
        out = L.from_storage(_take(ds, self._inverse[sel])[:, pos, :], self.storage_dtype)
        if as_torch:
            import torch

            return torch.from_numpy(np.ascontiguousarray(out))
        return out

    def iter_chunks(
        self,
        site: str,
        layer: int,
        chunk_size: int = 1024,
        positions: Iterable[str | int] | None = None,
        rows: Iterable[int] | None = None,
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Stream (prompt-order row indices, float32 block) pairs of at most ``chunk_size`` rows.

        Blocks follow the storage order so each read is contiguous; pass the yielded row indices to another store's
        :meth:`read` to pair rows across stores.
        """
        ds = self._dataset(site, layer)
        pos = self._position_index(positions)
        wanted = None if rows is None else np.zeros(self.n_prompts, dtype=bool)
        if wanted is not None:
            wanted[np.asarray(list(rows), dtype=np.int64)] = True
        for start in range(0, self.n_prompts, chunk_size):
            stop = min(start + chunk_size, self.n_prompts)
            prompt_rows = self._order[start:stop]
            block = L.from_storage(ds[start:stop][:, pos, :], self.storage_dtype)
            if wanted is not None:
                keep = wanted[prompt_rows]
                prompt_rows, block = prompt_rows[keep], block[keep]
            if len(prompt_rows):
                yield prompt_rows, block

    def read_ragged(self, site: str, layer: int, rows: Iterable[int] | None = None) -> list[np.ndarray]:
        """Read every token's activation: one (n_tokens_i, d_model) float32 array per requested prompt row."""
        ds = self._dataset(site, layer, ragged=True)
        offsets = self._h5["ragged/offsets"][()]
        sel = np.arange(self.n_prompts) if rows is None else np.asarray(list(rows), dtype=np.int64)
        out = []
        for r in sel:
            k = self._inverse[r]
            out.append(L.from_storage(ds[offsets[k] : offsets[k + 1]], self.storage_dtype))
        return out

    def to_xarray(self, site: str, layer: int, **read_kwargs):
        """Return :meth:`read` as an ``xarray.DataArray`` with prompt metadata as coordinates."""
        import xarray as xr

        rows = self.select_rows(read_kwargs.pop("langs", None), read_kwargs.pop("labels", None), read_kwargs.pop("rows", None))
        positions = read_kwargs.pop("positions", None)
        data = self.read(site, layer, positions=positions, rows=rows)
        df = self.prompts.iloc[rows]
        pos_labels = [str(p) for p in (positions if positions is not None else self.positions)]
        coords = {c: ("prompt", df[c].to_numpy()) for c in ("id", "lang", "label", "group", "category")}
        coords["position"] = pos_labels
        return xr.DataArray(data, dims=("prompt", "position", "d_model"), coords=coords, name=f"{site}.{layer}")


def _take(ds: h5py.Dataset, stored: np.ndarray) -> np.ndarray:
    """Rows ``stored`` of ``ds`` in the given order: one contiguous read when dense, else a sorted point read."""
    if len(stored) == 0:
        return np.empty((0, *ds.shape[1:]), dtype=ds.dtype)
    lo, hi = int(stored.min()), int(stored.max()) + 1
    if len(stored) * 4 >= hi - lo:
        return ds[lo:hi][stored - lo]
    uniq, inv = np.unique(stored, return_inverse=True)
    return ds[uniq][inv]


def open_store(path: str | Path) -> ActivationStore:
    """Open an activation store for reading (see :class:`ActivationStore`)."""
    return ActivationStore(path)
