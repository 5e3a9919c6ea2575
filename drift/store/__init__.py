"""The HDF5 activation store (the only package that imports h5py); layout in docs/store-spec.md."""

from drift.store.merge import merge_stores
from drift.store.reader import ActivationStore, open_store
from drift.store.writer import StorePlan, StoreWriter, partial_path

__all__ = ["ActivationStore", "StorePlan", "StoreWriter", "merge_stores", "open_store", "partial_path"]
