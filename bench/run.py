"""`make bench`: Podium's overhead over a bare asyncio executor.

Usage: `.venv/bin/python bench/run.py [--synchronous normal] [W1 W2 ...]`;
`BENCH_JSON=path` also writes the figures as JSON; `BENCH_AUTH=1` serves W1-W4 and W6 with `--auth`
and drives them with an API token. See bench/workloads.py for what each workload is.
"""

from __future__ import annotations

import sys
from pathlib import Path


def main() -> int:
    # Run as a script, sys.path[0] is bench/ itself; the modules import each
    # other as `bench.*`, so the repository root must be importable instead.
    sys.path[0] = str(Path(__file__).resolve().parent.parent)
    from bench.suite import main as run_suite

    return run_suite(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
