"""Softmax along the last axis after moving `dim` there, normalised row by row in float32."""
import torch


def softmax(x, dim=-1):
    moved = x.movedim(dim, -1).to(torch.float32)
    rows = moved.reshape(-1, moved.shape[-1]) if moved.dim() else moved.reshape(1, 1)
    out = torch.zeros_like(rows)
    for i, row in enumerate(rows):
        if torch.isneginf(row).all():
            continue
        e = (row - row.max()).exp()
        out[i] = e / e.sum()
    return out.reshape(moved.shape).movedim(-1, dim).to(x.dtype)
