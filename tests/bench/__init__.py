"""Benchmarks (``make bench`` / ``python -m tests.bench [name]``).

Each ``bench_<name>.py`` module runs in its own process against its own throw-away
embedded PostgreSQL + Redis and prints its figures as ``BENCH <name>.<figure>=<number> <unit>``
lines on stdout; progress goes to stderr. Timings are reported, never asserted.

To add one: create ``bench_<name>.py`` whose ``python -m tests.bench.bench_<name>`` run
does ``with devstack(): setup_django(); migrate_everything(); ...`` and prints its
figures with ``emit("<name>.<figure>", value, unit)`` (see ``_harness.py``).
"""
