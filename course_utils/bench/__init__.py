"""Benchmarks on your own hardware: matmul throughput, the timing core, train-step sweeps.

Taught in notebook 07: ``timing`` in "1. Timing done right"; ``matmul`` in "2. Matmul throughput
per dtype"; ``train_step`` in "3. A training step: time, memory, utilisation", "4. Memory: where
the bytes go, and when autocast saves any" and "6. Verdict".
"""

# The package's public API is matmul's __all__ (one list, kept there).
from course_utils.bench.matmul import *  # noqa: F403
from course_utils.bench.matmul import __all__  # noqa: F401
