"""Step 8 with einsum: out[b, l, o] = sum_f x[b, l, f] * w_o[o, f] (+ b_o[o])."""
import torch


def output_projection(x, w_o, b_o=None):
    out = torch.einsum("blf,of->blo", x, w_o)
    return out if b_o is None else out + b_o
