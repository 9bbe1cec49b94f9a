"""Wall time of a cold grade against a bare `python -c "import torch"`.

Prints the median of RUNS interleaved runs of each command and the ratios to the bare import
(targets: one exercise at most 1.1x, all fifteen at most 1.3x). Each grade is a fresh process
that starts the sandbox's zygote, as a learner's `make grade` does. Exercise 05 is a typical
one; 01 also loads the meta device's kernels for its device test (01 04 08 12 13 14 have one).

On Linux it also prints the CPU time the machine spent per run (every process, from
/proc/stat): a grade's floor on a 2-core machine is the torch import plus half of the rest.
"""
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RUNS = int(os.environ.get("RUNS", "7"))
TARGETS = {"grade one (05)": 1.1, "grade one (01, meta)": 1.1, "grade all": 1.3}


def busy_ticks():
    """Clock ticks every CPU spent busy since boot, or None off Linux."""
    try:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    return sum(fields) - fields[3] - (fields[4] if len(fields) > 4 else 0)   # all but idle and iowait


def run(cmd):
    """(wall seconds, CPU seconds of the whole machine or None)."""
    ticks = busy_ticks()
    start = time.perf_counter()
    subprocess.run(cmd, cwd=REPO, check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = busy_ticks()
    return wall, None if ticks is None else (after - ticks) / os.sysconf("SC_CLK_TCK")


def main():
    grader = [sys.executable, "-m", "grader"]
    commands = {
        "import torch": [sys.executable, "-c", "import torch"],
        "grade one (05)": grader + ["05", "--path", "solutions", "--seed", "1"],
        "grade one (01, meta)": grader + ["01", "--path", "solutions", "--seed", "1"],
        "grade all": grader + ["--path", "solutions", "--seed", "1"],
    }
    for cmd in commands.values():       # warm the file cache for all
        run(cmd)
    walls = {name: [] for name in commands}
    cpus = {name: [] for name in commands}
    for _ in range(RUNS):     # interleaved, so drift on a noisy machine hits all alike
        for name, cmd in commands.items():
            wall, cpu = run(cmd)
            walls[name].append(wall)
            if cpu is not None:
                cpus[name].append(cpu)
    print(f"cold grading, median of {RUNS} interleaved runs ({os.cpu_count()} CPUs)")
    for name in commands:
        cpu = f"   CPU {statistics.median(cpus[name]):5.2f} s" if cpus[name] else ""
        print(f"  {name:<22} {statistics.median(walls[name]):6.2f} s{cpu}   runs: "
              + " ".join(f"{t:.2f}" for t in walls[name]))
    base = statistics.median(walls["import torch"])
    for name, target in TARGETS.items():
        ratio = statistics.median(walls[name]) / base
        print(f"  ratio {name:<16} {ratio:5.2f}x   (target <= {target}x: {'met' if ratio <= target else 'NOT met'})")


if __name__ == "__main__":
    main()
