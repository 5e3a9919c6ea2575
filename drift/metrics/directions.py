"""Difference-of-means refusal directions (harmful minus harmless), per language and pooled.

A :class:`MeanFitter` accumulates float64 sums per (language, label) while streaming over a store; its frozen
:class:`MeanDiff` result gives the direction of any position, per language or pooled. :func:`fit_directions` runs the
fitter for every (site, layer) of a store and returns a :class:`DirectionSet`, which saves to ``.npz``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from drift.errors import DriftError

POOLED = "all"


@dataclass(frozen=True)
class MeanDiff:
    """Class means at one (site, layer), for every position.

    Attributes:
        site: Residual site.
        layer: Layer index.
        positions: Labels of the position axis.
        means: (lang, label) -> float64 mean, shaped (n_positions, d_model); lang ``all`` is pooled.
        counts: (lang, label) -> number of prompts.
    """

    site: str
    layer: int
    positions: tuple
    means: dict[tuple[str, str], np.ndarray]
    counts: dict[tuple[str, str], int]

    @property
    def langs(self) -> list[str]:
        """Languages with both harmful and harmless prompts (``all`` last)."""
        langs = sorted({lang for lang, _ in self.means if lang != POOLED})
        ok = [lang for lang in langs if (lang, "harmful") in self.means and (lang, "harmless") in self.means]
        return ok + [POOLED]

    def _pos(self, position) -> int:
        key = position if position in self.positions else str(position)
        if key not in self.positions:
            raise DriftError(f"position {position!r} not among {list(self.positions)}")
        return self.positions.index(key)

    def direction(self, position="last", lang: str = POOLED, unit: bool = False) -> np.ndarray:
        """mean(harmful) - mean(harmless) at ``position`` for ``lang`` (float64, (d_model,))."""
        if (lang, "harmful") not in self.means or (lang, "harmless") not in self.means:
            raise DriftError(f"language {lang!r} lacks harmful or harmless prompts at {self.site} layer {self.layer}")
        i = self._pos(position)
        d = self.means[(lang, "harmful")][i] - self.means[(lang, "harmless")][i]
        if not unit:
            return d
        norm = np.linalg.norm(d)
        return d / norm if norm > 0 else np.full_like(d, np.nan)  # a zero direction has no unit vector


class MeanFitter:
    """Streams (n, positions, d) activations with their languages and labels into float64 sums."""

    def __init__(self, site: str, layer: int, positions: Iterable) -> None:
        self.site, self.layer, self.positions = site, layer, tuple(positions)
        self._sums: dict[tuple[str, str], np.ndarray] = {}
        self._counts: dict[tuple[str, str], int] = {}

    def update(self, x: np.ndarray, langs: Iterable[str], labels: Iterable[str]) -> MeanFitter:
        """Add a chunk of rows; ``langs`` and ``labels`` give each row's language and label."""
        x = np.asarray(x, dtype=np.float64)
        langs, labels = np.asarray(list(langs)), np.asarray(list(labels))
        if not len(langs) == len(labels) == x.shape[0]:
            raise DriftError("activations, languages and labels must have the same number of rows")
        for label in np.unique(labels):
            for lang in [*np.unique(langs[labels == label]), POOLED]:
                mask = labels == label if lang == POOLED else (labels == label) & (langs == lang)
                key = (str(lang), str(label))
                self._sums[key] = self._sums.get(key, 0.0) + x[mask].sum(0)
                self._counts[key] = self._counts.get(key, 0) + int(mask.sum())
        return self

    def result(self) -> MeanDiff:
        """Frozen means."""
        means = {k: v / self._counts[k] for k, v in self._sums.items() if self._counts[k]}
        return MeanDiff(self.site, self.layer, self.positions, means, dict(self._counts))


@dataclass(frozen=True)
class DirectionSet:
    """Class means for every (site, layer) of a store, with the provenance of that store."""

    items: dict[tuple[str, int], MeanDiff]
    meta: dict = field(default_factory=dict)

    @property
    def sites(self) -> list[str]:
        """Sites covered."""
        return sorted({s for s, _ in self.items})

    @property
    def layers(self) -> list[int]:
        """Layers covered."""
        return sorted({layer for _, layer in self.items})

    @property
    def positions(self) -> tuple:
        """Position labels (shared by every item)."""
        return next(iter(self.items.values())).positions

    def get(self, site: str, layer: int) -> MeanDiff:
        """The means at (site, layer)."""
        if (site, layer) not in self.items:
            raise DriftError(f"no direction for {site} layer {layer}: have sites {self.sites}, layers {self.layers}")
        return self.items[(site, layer)]

    def direction(self, site: str, layer: int, position="last", lang: str = POOLED, unit: bool = False) -> np.ndarray:
        """Difference-of-means direction at (site, layer, position) for ``lang``."""
        return self.get(site, layer).direction(position, lang, unit)

    def cosine_matrix(self, site: str, layer: int, position="last") -> tuple[list[str], np.ndarray]:
        """Languages and the language x language cosine matrix of their directions."""
        md = self.get(site, layer)
        langs = md.langs
        units = np.stack([md.direction(position, lang, unit=True) for lang in langs])
        return langs, units @ units.T

    def save(self, path: str | Path) -> Path:
        """Write to a ``.npz`` file (arrays plus a JSON index) through a temporary name."""
        path = Path(path)
        arrays, index = {}, []
        for (site, layer), md in self.items.items():
            for (lang, label), mean in md.means.items():
                name = f"a{len(arrays)}"
                arrays[name] = mean
                index.append([site, layer, lang, label, md.counts[(lang, label)], name])
        header = {"positions": [str(p) for p in self.positions], "index": index, "meta": self.meta}
        tmp = path.with_name(path.name + ".tmp.npz")
        np.savez(tmp, __index__=np.array(json.dumps(header)), **arrays)
        tmp.replace(path)
        return path


def load_directions(path: str | Path) -> DirectionSet:
    """Read a :class:`DirectionSet` written by :meth:`DirectionSet.save`."""
    from drift.store.layout import decode_position

    path = Path(path)
    if not path.is_file():
        raise DriftError(f"directions file not found: {path}")
    with np.load(path) as z:
        header = json.loads(str(z["__index__"]))
        positions = tuple(decode_position(p) for p in header["positions"])
        means: dict[tuple[str, int], dict] = {}
        counts: dict[tuple[str, int], dict] = {}
        for site, layer, lang, label, n, name in header["index"]:
            means.setdefault((site, layer), {})[(lang, label)] = z[name]
            counts.setdefault((site, layer), {})[(lang, label)] = n
    items = {k: MeanDiff(k[0], k[1], positions, means[k], counts[k]) for k in means}
    return DirectionSet(items, header.get("meta", {}))


def fit_directions(
    store,
    sites: Iterable[str] | None = None,
    layers: Iterable[int] | None = None,
    rows: Iterable[int] | None = None,
    chunk_size: int = 1024,
) -> DirectionSet:
    """Stream a store once per (site, layer) and return the class means (per language and pooled).

    Args:
        store: An :class:`~drift.store.ActivationStore` with harmful and harmless prompts.
        sites: Sites to use (default: all in the store).
        layers: Layers to use (default: all in the store).
        rows: Prompt rows to use (default: all), e.g. a training split.
        chunk_size: Rows read at a time.
    """
    df = store.prompts
    if not {"harmful", "harmless"} <= set(df["label"]):
        raise DriftError(f"{store.path} needs both harmful and harmless prompts to fit refusal directions")
    langs, labels = df["lang"].to_numpy(), df["label"].to_numpy()
    items = {}
    for site in sites or store.sites:
        for layer in layers or store.layers:
            fitter = MeanFitter(site, layer, store.positions)
            for idx, block in store.iter_chunks(site, layer, chunk_size=chunk_size, rows=rows):
                fitter.update(block, langs[idx], labels[idx])
            items[(site, layer)] = fitter.result()
    meta = {"store": str(store.path), "run": store.provenance.get("run", {}), "prompts": store.provenance.get("prompts")}
    return DirectionSet(items, meta)
