# attack: catch an exception and climb tb_frame / f_back / gi_frame into the harness's frames to clear its findings or reach its pipes
# layer: the audit hook (tb_frame, gi_frame, f_code refused) + static scan
# expect: frames
# runtime: frames
import numpy as np


def _climb():
    try:
        raise ZeroDivisionError
    except ZeroDivisionError as e:
        frame = e.__traceback__.tb_frame
    found = []
    while frame is not None:
        found.append(sorted(frame.f_locals))
        frame = frame.f_back
    return found


def _gen():
    yield 1


def attention_forward(q, k, v, causal=False):
    g = _gen()
    _ = g.gi_frame
    _climb()
    raise NotImplementedError


def attention_backward(dout, cache):
    _climb()
    raise NotImplementedError
