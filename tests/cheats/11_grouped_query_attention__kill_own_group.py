# attack: SIGKILL its own process group and session (killpg(0), kill(0)), hoping the grader shares them
# layer: its own session (setsid) + seccomp + pid namespace: only itself dies, and only its exercise fails
import os
import signal


def _attack():
    for call in (lambda: os.killpg(0, signal.SIGKILL), lambda: os.kill(0, signal.SIGKILL),
                 lambda: os.killpg(os.getpgid(os.getppid()), signal.SIGKILL)):
        try:
            call()
        except OSError:
            pass


def repeat_kv(x, n_rep):
    _attack()
    raise NotImplementedError


def grouped_query_attention(q, k, v, mask=None, scale=None):
    _attack()
    raise NotImplementedError


def kv_cache_bytes(batch, seq_len, num_layers, num_kv_heads, head_dim, dtype):
    _attack()
    raise NotImplementedError
