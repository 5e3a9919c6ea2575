"""Running beyond one process: checkpoints x prompt shards as independent jobs, on Ray (extra ``scale``).

Sharding itself lives in :mod:`drift.data.shard` and merging in :mod:`drift.store.merge` and
:mod:`drift.generate.merge`; this package describes the jobs and launches them. Ray is imported only when a launcher
runs.
"""

from drift.scale.jobs import ExtractJob, make_jobs, merged_path, shard_path
from drift.scale.ray_engine import run_extract_ray, run_sweep_ray

__all__ = ["ExtractJob", "make_jobs", "merged_path", "run_extract_ray", "run_sweep_ray", "shard_path"]
