# attack: an object that claims to be an ndarray (a __class__ property) and whose __array__ runs code while the reply is made
# layer: replies are data: types are compared by identity, never asked (no isinstance, no __array__)
# expect: in place of a plain tensor
# runtime: in place of a plain tensor
import numpy as np


class Posing:
    def __init__(self, shape):
        self.shape = shape

    @property
    def __class__(self):
        return np.ndarray

    def __array__(self, dtype=None, copy=None):
        return np.zeros(self.shape)


def attention_forward(q, k, v, causal=False):
    return Posing(q.shape[:-1] + v.shape[-1:]), (q, k, v)


def attention_backward(dout, cache):
    q, k, v = cache
    return Posing(q.shape), Posing(k.shape), Posing(v.shape)
