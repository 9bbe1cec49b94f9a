# attack: a library softmax under an innocent alias (from torch.nn.functional import softmax as normalise)
# layer: static scan
from torch.nn.functional import softmax as normalise


def softmax(x, dim=-1):
    return normalise(x, dim=dim)
