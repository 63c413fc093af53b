"""``python -m tests.benchmarks [--quick]``: see :mod:`tests.benchmarks.run`."""

from tests.benchmarks.run import main

main()
