"""``python -P -m slurm.runner JOB_DIR [--array] [--ranks | --rank]``: the job-side entry
point every batch script calls (queued scripts of earlier versions too).

The job side itself is :mod:`slurm._job`; this module only starts it.
"""

import sys

from slurm._job.entry import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
