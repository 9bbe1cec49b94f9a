"""Setup's cost: what a fresh `make setup` downloads and how long it takes, CPU-only and CUDA, and
what the check before every make command costs once .venv is up to date.

python bench/setup_speed.py      (make bench; needs about 2 GB of free disk for the CPU-only venv)
BENCH_CUDA=1 measures the CUDA setup as well where pip's index serves the CUDA build (several GB).

A fresh setup runs grader/setup_venv.py into a temporary folder with pip's cache off. The download
is the total size of the wheels pip chose, fetched again afterwards with `pip download --no-deps`
from the same indexes (pip reports no byte counts of its own); pip and setuptools, which come with
the venv, are not counted. Where wheels come from a folder on this machine (find-links), the time
has no network in it: on a laptop add the download time.
"""
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "grader" / "setup_venv.py"
sys.path.insert(0, str(SCRIPT.parent))
import setup_venv  # noqa: E402  (standard library only; imported by path, not as grader.setup_venv)

BUNDLED = {"pip", "setuptools"}


def fresh_setup(work, torch):
    venv = work / f"venv-{torch}"
    env = dict(os.environ, PIP_NO_CACHE_DIR="1")
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, str(SCRIPT), "--venv", str(venv), "--torch", torch,
                           str(REPO / "requirements.txt")], env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(proc.stdout + proc.stderr)
    return venv, elapsed, proc.stdout


def downloaded_mb(venv, work):
    """Total size of the wheels of every package in the venv, fetched from the indexes setup used."""
    stamp = json.loads((venv / ".installed").read_text())
    py = str(venv / "bin" / "python")
    dists = json.loads(subprocess.check_output([py, "-m", "pip", "list", "--format=json"], text=True))
    pins = [f"{d['name']}=={d['version']}" for d in dists if d["name"].lower() not in BUNDLED]
    torch = [p for p in pins if p.lower().startswith("torch==")]
    rest = [p for p in pins if p not in torch]
    dl = work / f"wheels-{stamp['torch']}"
    pip = [py, "-m", "pip", "download", "--quiet", "--no-deps", "--no-cache-dir", "-d", str(dl)]
    if torch and stamp["torch_source"] == setup_venv.CPU_INDEX:
        _quietly(pip + torch + ["--index-url", setup_venv.CPU_INDEX])
        torch = []
    _quietly(pip + torch + rest)
    return sum(f.stat().st_size for f in dl.iterdir()) / 1e6, stamp


def _quietly(cmd):
    """Runs a pip download; its warnings (about this machine's pip configuration) show only if it fails."""
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(proc.stdout + proc.stderr)


def configured_torch(work):
    """The torch version pip's configured index would install (a dry run: no wheel is downloaded)."""
    req = setup_venv.torch_requirement(setup_venv.requirement_lines(str(REPO / "requirements.txt")))
    report = work / "report.json"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--dry-run", "--ignore-installed", "--no-deps",
                    "--report", str(report), req], check=True, capture_output=True)
    return json.loads(report.read_text())["install"][0]["metadata"]["version"]


def measure(work, torch, label):
    venv, elapsed, out = fresh_setup(work, torch)
    size, stamp = downloaded_mb(venv, work)
    print(f"setup, {label}: {size:.0f} MB of wheels, {elapsed:.0f} s fresh (pip cache off); "
          f"torch {stamp['torch_installed']} from {stamp['torch_source']}")
    return venv


def main():
    with tempfile.TemporaryDirectory(prefix="setup-bench-") as tmp:
        work = Path(tmp)
        if setup_venv.cpu_index_reachable():
            venv = measure(work, "cpu", "CPU-only (make setup on Linux)")
        else:
            print(f"setup, CPU-only from {setup_venv.CPU_INDEX}: skipped (that index cannot be reached from here)")
            venv = measure(work, "cpu", "CPU-only, the fallback make setup takes here (pip's configured index)")
        # What every make command pays once .venv is set up: the stamp check, beside a bare start.
        def median_ms(cmd):
            runs = []
            for _ in range(5):
                t0 = time.perf_counter()
                subprocess.run(cmd, check=True, capture_output=True)
                runs.append(time.perf_counter() - t0)
            return statistics.median(runs) * 1000
        check = median_ms([sys.executable, str(SCRIPT), "--venv", str(venv), str(REPO / "requirements.txt")])
        bare = median_ms([sys.executable, "-c", "pass"])
        print(f"setup check, .venv up to date: {check:.0f} ms per make command, a bare `python -c pass` "
              f"{bare:.0f} ms (medians of 5)")
        shutil.rmtree(venv)
        try:
            version = configured_torch(work)
        except (subprocess.CalledProcessError, LookupError, ValueError) as e:
            print(f"setup, CUDA (make setup TORCH=cuda): skipped (pip's configured index cannot be reached: {e})")
            return 0
        if "+" in version:
            print(f"setup, CUDA (make setup TORCH=cuda): skipped (pip's configured index here serves torch {version}: "
                  "no CUDA build reachable to measure)")
        elif os.environ.get("BENCH_CUDA") != "1":
            print(f"setup, CUDA (make setup TORCH=cuda): skipped (pip's configured index serves torch {version}, the "
                  "CUDA build: several GB; BENCH_CUDA=1 measures it)")
        else:
            measure(work, "cuda", "CUDA (make setup TORCH=cuda)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
