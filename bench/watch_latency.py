"""Save-to-report latency of `make watch`: from the moment exercise 05 is written to the moment the
report's last line ("Save exercises/05_softmax.py to grade it") is on the terminal.

Runs the real watch command on a pseudo-terminal, in a scratch copy of the repository, saving the
stub and the reference in turn; prints the median of RUNS saves and each run (target: 1 s on an
idle 2-core machine). The first grade (which also starts the warm grader) is not counted.
"""
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
from ptyterm import Terminal  # noqa: E402

RUNS = 7
LAST_LINE = "to grade it. Ctrl-C stops watching."


def main():
    with tempfile.TemporaryDirectory(prefix="watch-latency-") as tmp:
        root = Path(tmp)
        shutil.copytree(REPO / "grader", root / "grader", ignore=shutil.ignore_patterns("__pycache__"))
        shutil.copytree(REPO / "exercises", root / "exercises")
        target = root / "exercises" / "05_softmax.py"
        versions = [(REPO / "solutions" / "05_softmax.py").read_text(), (REPO / "exercises" / "05_softmax.py").read_text()]
        term = Terminal([sys.executable, "-m", "grader.study", "watch", "05"], root, STUDY_POLL="0.1")
        try:
            term.wait_for(LAST_LINE, timeout=180)
            times = []
            for i in range(RUNS):
                seen = term.text().count(LAST_LINE)
                time.sleep(0.3)
                start = time.perf_counter()
                target.write_text(versions[i % 2] + f"\n# save {i}\n")
                while term.text().count(LAST_LINE) <= seen:
                    if time.perf_counter() - start > 120:
                        raise SystemExit("no report within 120 s")
                    time.sleep(0.005)
                times.append(time.perf_counter() - start)
        finally:
            term.close()
    print(f"{'watch: save to report':<24} median {statistics.median(times):6.2f} s   runs: "
          + " ".join(f"{t:.2f}" for t in times) + "   (target <= 1 s, idle 2-core machine)")


if __name__ == "__main__":
    main()
