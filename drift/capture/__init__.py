"""Capturing residual-stream activations into the store, with interchangeable backends."""

from drift.capture.backends import HFHooksBackend, get_backend
from drift.capture.extract import CaptureConfig, encode_prompts, extract
from drift.capture.positions import POSITIONS
from drift.capture.sites import SITES

__all__ = ["POSITIONS", "SITES", "CaptureConfig", "HFHooksBackend", "encode_prompts", "extract", "get_backend"]
