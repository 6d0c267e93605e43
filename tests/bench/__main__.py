"""``python -m tests.bench [name ...]`` (``make bench [BENCH=name]``).

Runs every ``tests/bench/bench_<name>.py`` (or only the named ones), each in its own
process with its own throw-away PostgreSQL + Redis. Their ``BENCH <name>.<figure>=<n> <unit>``
lines go to stdout; progress and the wall time of each benchmark go to stderr.

Before and after each benchmark, ``<name>.machine_probe_ms`` times a fixed piece of pure
Python (best of five): the machines are shared and their speed drifts, and a figure is
only comparable with another one measured at a similar probe.
"""
from __future__ import annotations

import subprocess
import sys
import time
import timeit
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent


def available() -> list[str]:
    return sorted(path.stem[len("bench_"):] for path in HERE.glob("bench_*.py"))


def machine_probe_ms() -> float:
    """Milliseconds for ``sum(range(10**6))``, best of five (~19 ms on a quiet machine here)."""
    return 1000 * min(timeit.repeat("sum(range(10**6))", number=1, repeat=5))


def main(argv: list[str]) -> int:
    names = available()
    wanted = [arg.removeprefix("bench_").removesuffix(".py") for arg in argv if arg.strip()]
    unknown = [name for name in wanted if name not in names]
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; available: {', '.join(names)}", file=sys.stderr)
        return 2
    failed: list[str] = []
    for name in wanted or names:
        print(f"== bench {name}", file=sys.stderr, flush=True)
        probe_before = machine_probe_ms()
        started = time.monotonic()
        try:
            result = subprocess.run([sys.executable, "-m", f"tests.bench.bench_{name}"], cwd=ROOT, check=False)
        except KeyboardInterrupt:  # the child got the Ctrl-C too and stops its servers
            print(f"== bench {name}: interrupted", file=sys.stderr)
            return 130
        elapsed = time.monotonic() - started
        probes = (probe_before, machine_probe_ms())
        print(f"BENCH {name}.machine_probe_ms={max(probes):.1f} ms", flush=True)  # the slower of before/after
        status = "ok" if result.returncode == 0 else f"FAILED (exit {result.returncode})"
        print(f"== bench {name}: {status} in {elapsed:.1f} s", file=sys.stderr, flush=True)
        if result.returncode != 0:
            failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
