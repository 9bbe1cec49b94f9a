"""Wall time of grading one exercise and the whole reference against a bare `import torch`.

Prints the median of 5 interleaved runs of each and the ratios (targets: one exercise at most
1.5x, all fifteen at most 2x). Each grade starts the sandbox's zygote, as a learner's does.
"""
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RUNS = 5


def wall(cmd):
    start = time.perf_counter()
    subprocess.run(cmd, cwd=REPO, check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main():
    bare = [sys.executable, "-c", "import torch"]
    one = [sys.executable, "-m", "grader", "05", "--path", "solutions", "--seed", "1"]
    grade = [sys.executable, "-m", "grader", "--path", "solutions", "--seed", "1"]
    wall(bare)  # warm the file cache for all
    wall(one)
    times = {"import torch": [], "grade one (05)": [], "grade all (reference)": []}
    for _ in range(RUNS):   # interleaved, so drift on a noisy machine hits all alike
        times["import torch"].append(wall(bare))
        times["grade one (05)"].append(wall(one))
        times["grade all (reference)"].append(wall(grade))
    for name, ts in times.items():
        print(f"{name:<24} median {statistics.median(ts):6.2f} s   runs: {' '.join(f'{t:.2f}' for t in ts)}")
    base = statistics.median(times["import torch"])
    print(f"{'ratio one':<24} {statistics.median(times['grade one (05)']) / base:6.2f}x   (target <= 1.5x)")
    print(f"{'ratio all':<24} {statistics.median(times['grade all (reference)']) / base:6.2f}x   (target <= 2x)")


if __name__ == "__main__":
    main()
