"""zview's benchmarks (``python -m tests.benchmarks --quick``); see ``run.py``."""
