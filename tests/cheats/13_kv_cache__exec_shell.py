# attack: replace the sandbox with a shell (execv), or run one through subprocess and posix_spawn
# layer: seccomp (no exec) + static scan (subprocess); the audit hook names it
# expect: subprocess
import os
import subprocess


def _attack():
    for run in (lambda: subprocess.run(["/bin/sh", "-c", "id"]), lambda: os.posix_spawn("/bin/sh", ["sh"], {}),
                lambda: os.execv("/bin/sh", ["sh", "-c", "id"])):
        try:
            run()
        except OSError:
            pass


class KVCache:
    def __init__(self, batch, num_heads, max_len, head_dim, dtype=None, device=None):
        _attack()
        raise NotImplementedError


def cached_attention(q_new, k_new, v_new, cache, scale=None):
    _attack()
    raise NotImplementedError
