# attack: fork until the machine runs out of processes, and start a shell
# layer: seccomp (no fork, no exec) + RLIMIT_NPROC; the audit hook names it
# expect: os.fork
import os


def attention_scores(q, k, scale=None):
    for _ in range(64):
        try:
            os.fork()
        except OSError:
            break
    try:
        os.system("sh -c 'sleep 100 &'")
    except OSError:
        pass
    raise NotImplementedError
