"""Wall time of grading the whole reference against a bare `import torch`, in one run.

Prints the median of 5 runs of each and their ratio (target: at most 2x).
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
    grade = [sys.executable, "-m", "grader", "--path", "solutions", "--seed", "1"]
    wall(bare)  # warm the file cache for both
    times = {"import torch": [], "grade all (reference)": []}
    for _ in range(RUNS):   # interleaved, so drift on a noisy machine hits both alike
        times["import torch"].append(wall(bare))
        times["grade all (reference)"].append(wall(grade))
    for name, ts in times.items():
        print(f"{name:<24} median {statistics.median(ts):6.2f} s   runs: {' '.join(f'{t:.2f}' for t in ts)}")
    ratio = statistics.median(times["grade all (reference)"]) / statistics.median(times["import torch"])
    print(f"ratio                    {ratio:6.2f}x   (target <= 2x)")


if __name__ == "__main__":
    main()
