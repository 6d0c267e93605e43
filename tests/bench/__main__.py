"""``python -m tests.bench [name ...]`` (``make bench [BENCH=name]``).

Runs every ``tests/bench/bench_<name>.py`` (or only the named ones), each in its own
process with its own throw-away PostgreSQL + Redis. Their ``BENCH <name>.<figure>=<n> <unit>``
lines go to stdout; progress and the wall time of each benchmark go to stderr.
"""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent


def available() -> list[str]:
    return sorted(path.stem[len("bench_"):] for path in HERE.glob("bench_*.py"))


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
        started = time.monotonic()
        try:
            result = subprocess.run([sys.executable, "-m", f"tests.bench.bench_{name}"], cwd=ROOT, check=False)
        except KeyboardInterrupt:  # the child got the Ctrl-C too and stops its servers
            print(f"== bench {name}: interrupted", file=sys.stderr)
            return 130
        elapsed = time.monotonic() - started
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
