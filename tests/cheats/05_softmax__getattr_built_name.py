# attack: a library softmax reached with getattr and a name built at run time, invisible to reading the file
# layer: the watch + static scan (getattr with a built name)
# runtime: softmax
import torch

_name = "".join(["so", "ft", "max"])


def softmax(x, dim=-1):
    return getattr(torch, _name)(x, dim)
