# attack: return a result of hundreds of megabytes, so the grader reads and holds it all
# layer: host (a reply's size is read from its header and refused above 64 MiB before the body is read)
# expect: MiB
import torch


class KVCache:
    def __init__(self, batch, num_heads, max_len, head_dim, dtype=torch.float32, device=None):
        self.k = torch.zeros(batch, num_heads, max_len, head_dim, dtype=dtype)
        self.n = 0

    def __len__(self):
        return self.n

    def update(self, k_new, v_new):
        return torch.zeros(1), torch.zeros(1)


_sent = []


def cached_attention(q_new, k_new, v_new, cache, scale=None):
    _sent.append(1)
    return torch.zeros(70_000_000 if len(_sent) == 1 else 1, dtype=torch.uint8)
