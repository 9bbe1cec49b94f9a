# attack: use ctypes to call libc directly (kill, write, raw memory), below every Python-level hook
# layer: static scan (ctypes) + the audit hook (every ctypes call refused) + seccomp below it
# expect: ctypes
# runtime: ctypes
import ctypes


def split_heads(x, num_heads):
    libc = ctypes.CDLL(None)
    libc.kill(1, 9)
    ctypes.memset(ctypes.addressof(ctypes.c_int(0)), 0, 4)
    B, L, D = x.shape
    return x.reshape(B, L, num_heads, D // num_heads).transpose(1, 2)
