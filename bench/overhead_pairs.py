"""Two builds' engine overhead, measured at the same time: is a change faster?

    PYTHONPATH=src:bench .venv/bin/python bench/overhead_pairs.py OLD_TREE NEW_TREE
        [--n 1000] [--latency-ms 200] [--embedder hashing] [--pairs 4] [--rounds 16]

Each tree is a checkout of tactful (``git worktree add /tmp/old <commit>``, say). Each pair runs
``bench/side_by_side.py``'s tactful measurement (``measure_tactful``: the anchor's scenario at N
guidelines, its five turns ``--rounds`` times) once on each tree, both at once, in two processes.

Why at once: on a shared 2-CPU virtual machine the median overhead of the same build moved by
±1.5 ms from one process to the next (12.0 to 16.0 ms at N = 1000), more than the changes it
was meant to judge. Two builds running side by side meet the same machine; each is idle most of
a turn (the fake model's latency), so they rarely want the CPU at once. The report gives each
pair's medians and the difference, new minus old.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import turn_cost

# Run inside each tree's own Python path: that tree's side_by_side and tactful.
_MEASURE = """
import asyncio, json, statistics, sys
import side_by_side
data = json.loads(open(sys.argv[1]).read())
run = asyncio.run(side_by_side.measure_tactful(data, float(sys.argv[2]), sys.argv[3],
                                               rounds=int(sys.argv[4])))
values = lambda name: [getattr(t, name) for t in run.turns]
print(json.dumps({name: statistics.median(values(name)) for name in ("overhead_ms", "wall_ms")}))
"""


def _start(tree: Path, scenario: Path, args: argparse.Namespace) -> subprocess.Popen[str]:
    paths = f"{tree / 'src'}:{tree / 'bench'}"
    command = [sys.executable, "-c", _MEASURE, str(scenario), str(args.latency_ms)]
    return subprocess.Popen(
        [*command, args.embedder, str(args.rounds)],
        cwd=tree,
        env={**os.environ, "PYTHONPATH": paths},
        stdout=subprocess.PIPE,
        text=True,
    )


def _result(process: subprocess.Popen[str], tree: Path) -> dict[str, float]:
    out, _ = process.communicate()
    if process.returncode != 0:
        raise SystemExit(f"the measurement of {tree} failed (exit {process.returncode})")
    figures: dict[str, float] = json.loads(out.strip().splitlines()[-1])
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("old", type=Path)
    parser.add_argument("new", type=Path)
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--latency-ms", type=float, default=200.0)
    parser.add_argument("--embedder", choices=["hashing", "minilm"], default="hashing")
    parser.add_argument("--pairs", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=16)
    args = parser.parse_args()
    for tree in (args.old, args.new):
        if not (tree / "src" / "tactful").is_dir() or not (tree / "bench").is_dir():
            parser.error(f"{tree} is not a checkout of tactful (no src/tactful or bench there)")
    differences = []
    with tempfile.TemporaryDirectory() as tmp:
        scenario = Path(tmp) / "scenario.json"
        scenario.write_text(json.dumps(turn_cost.scenario(args.n)))
        print(
            f"N = {args.n}, {args.embedder}, {args.latency_ms:g} ms model, "
            f"{5 * args.rounds} turns per build and pair; medians in ms",
            flush=True,
        )
        for pair in range(1, args.pairs + 1):
            old = _start(args.old, scenario, args)
            new = _start(args.new, scenario, args)
            before, after = _result(old, args.old), _result(new, args.new)
            difference = after["overhead_ms"] - before["overhead_ms"]
            differences.append(difference)
            print(
                f"pair {pair}: overhead {before['overhead_ms']:.2f} -> {after['overhead_ms']:.2f} "
                f"({difference:+.2f}); wall {before['wall_ms']:.1f} -> {after['wall_ms']:.1f}",
                flush=True,
            )
    print(f"median difference in overhead: {statistics.median(differences):+.2f} ms")


if __name__ == "__main__":
    main()
