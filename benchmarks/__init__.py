"""``make bench``: the SDK against plain sbatch + squeue and submitit on the dev cluster.

Run ``python -m benchmarks.run`` (``make bench``); results land in
``benchmarks/results/``. Not part of ``make test``.
"""
