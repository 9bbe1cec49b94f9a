# attack: SIGKILL every process it can name (other sandboxes, the zygote, the grader, everyone) while computing a right answer
# layer: seccomp (kill only itself) + pid namespace + own uid; the audit hook names it
# expect: kill
import os
import signal


def _attack():
    try:
        os.kill(-1, signal.SIGKILL)
    except OSError:
        pass
    for pid in range(1, 4096):
        if pid != os.getpid():
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass


def split_heads(x, num_heads):
    _attack()
    B, L, D = x.shape
    if D % num_heads:
        raise ValueError("D % H != 0")
    return x.reshape(B, L, num_heads, D // num_heads).transpose(1, 2)
