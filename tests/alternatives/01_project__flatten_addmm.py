"""Alternative 01: flatten the leading axes, torch.addmm / torch.mm, reshape back."""
import torch


def linear(x, weight, bias=None):
    lead = x.shape[:-1]
    flat = x.reshape(-1, x.shape[-1])
    if bias is None:
        out = torch.mm(flat, weight.t())
    else:
        out = torch.addmm(bias, flat, weight.t())
    return out.reshape(*lead, weight.shape[0])


def project_qkv(x, w_q, w_k, w_v, b_q=None, b_k=None, b_v=None, context=None):
    if context is None:
        context = x
    q = linear(x, w_q, b_q)
    k = linear(context, w_k, b_k)
    v = linear(context, w_v, b_v)
    return q, k, v
