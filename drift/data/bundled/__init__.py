"""Prompt sets written by the polydrift authors and shipped with the package."""
