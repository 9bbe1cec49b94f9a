"""Softmax computed in float64, with torch.where for the slices that are all -inf."""
import torch


def softmax(x, dim=-1):
    wide = x.to(torch.float64)
    m = wide.max(dim=dim, keepdim=True).values
    empty = torch.isneginf(m)
    e = torch.exp(wide - torch.where(empty, torch.zeros_like(m), m))
    total = e.sum(dim=dim, keepdim=True)
    return torch.where(empty, torch.zeros_like(e), e / torch.where(empty, torch.ones_like(total), total)).to(x.dtype)
