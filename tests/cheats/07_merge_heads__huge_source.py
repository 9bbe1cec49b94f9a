# attack: a source file of 12 MB (mostly one comment) to make the grader's own process parse and hold it
# layer: host (files over 1 MiB are refused before they are read)
# expect: KiB
# make: pad=12000000
import torch


def merge_heads(x):
    B, H, L, d = x.shape
    return x.transpose(1, 2).reshape(B, L, H * d)
