"""Peak memory of the reference flash attention (14) against naive attention (09), L = S = 4096.

Each is measured in a fresh process: peak resident memory during the call minus the memory
held just before it (inputs included in neither). Prints both, their ratio and the wall times.
"""
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
B, H, L, D = 1, 4, 4096, 64

MEASURE = r"""
import importlib.util, resource, sys, time, torch
torch.set_num_threads(1)
def load(name):
    spec = importlib.util.spec_from_file_location(name, f"solutions/{name}.py")
    m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m); return m
B, H, L, D = map(int, sys.argv[2:6])
q, k, v = (torch.randn(B, H, L, D) for _ in range(3))
rss = lambda: int(open("/proc/self/statm").read().split()[1]) * resource.getpagesize()
before = rss()
start = time.perf_counter()
if sys.argv[1] == "flash":
    out, lse = load("14_flash_attention").flash_attention(q, k, v, causal=True)
else:
    mask = torch.ones(L, L, dtype=torch.bool).triu(1)
    out, probs = load("09_scaled_dot_product_attention").scaled_dot_product_attention(q, k, v, mask=mask)
    del probs
elapsed = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(peak - before, elapsed)
"""


def measure(kind):
    out = subprocess.run([sys.executable, "-c", MEASURE, kind, *map(str, (B, H, L, D))], cwd=REPO, capture_output=True, text=True, check=True)
    extra, seconds = out.stdout.split()
    return int(extra), float(seconds)


def main():
    print(f"causal attention, B={B} H={H} L=S={L} d={D}, float32, one thread")
    naive, t_naive = measure("naive")
    flash, t_flash = measure("flash")
    print(f"naive (09 reference)  peak extra memory {naive / 2**20:8.1f} MiB   {t_naive:6.2f} s")
    print(f"flash (14 reference)  peak extra memory {flash / 2**20:8.1f} MiB   {t_flash:6.2f} s")
    print(f"memory ratio naive / flash: {naive / max(flash, 1):.1f}x")


if __name__ == "__main__":
    main()
