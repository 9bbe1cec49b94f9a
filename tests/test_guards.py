"""Reading a file for forbidden helpers: every spelling is caught, the exercise's own names are not."""
import pytest

from helpers import REPO  # noqa: F401  (puts the repository on sys.path)
from grader.guards import LINEAR_LAYER, SOFTMAX_FAMILY, is_forbidden, scan_source

CAUGHT = [
    ("import torch.nn.functional as F\ndef f(q, k, v):\n    return F.scaled_dot_product_attention(q, k, v)", ()),
    ("from torch.nn.functional import scaled_dot_product_attention as sdpa\n", ()),
    ("import torch\nm = torch.nn.MultiheadAttention(4, 2)\n", ()),
    ("import torch\ndef f(q):\n    return torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(q, q, q)\n", ()),
    ("import torch\nf = getattr(torch.nn.functional, 'scaled_dot_product_attention')\n", ()),
    ("def softmax(x, dim=-1):\n    return x.softmax(dim)\n", SOFTMAX_FAMILY),
    ("import torch\ndef softmax(x, dim=-1):\n    return torch.special.softmax(x, dim)\n", SOFTMAX_FAMILY),
    ("import torch\ndef softmax(x, dim=-1):\n    return (x - x.logsumexp(dim, keepdim=True)).exp()\n", SOFTMAX_FAMILY),
    ("from torch.nn.functional import linear\n", LINEAR_LAYER),
    ("import torch.nn as nn\nlayer = nn.Linear(3, 3)\n", LINEAR_LAYER),
    ("import gc\n", ()),
    ("import sys\nsys.modules['grader'] = None\n", ()),
    ("import torch\ntorch.allclose = lambda *a, **k: True\n", ()),
    ("def f():\n    return __import__('grader')\n", ()),
]

ALLOWED = [
    ("import torch\ndef scaled_dot_product_attention(q, k, v, mask=None, scale=None):\n"
     "    return softmax(q @ k.transpose(-2, -1)) @ v, None\n", ()),
    ("import torch\ndef softmax(x, dim=-1):\n    m = x.amax(dim, keepdim=True)\n    return (x - m).exp()\n", SOFTMAX_FAMILY),
    ('def linear(x, weight, bias=None):\n    """Like F.linear, without it."""\n    return x @ weight.T\n', LINEAR_LAYER),
    ("import torch.nn as nn\nclass MultiHeadAttention(nn.Module):\n    pass\nq = nn.Linear(4, 4)\n", ()),
    ("import math, sys, os, time\nimport numpy as np\n", ()),
]


@pytest.mark.parametrize("source,extra", CAUGHT)
def test_forbidden_spellings_are_caught(source, extra):
    assert scan_source(source, extra), source


@pytest.mark.parametrize("source,extra", ALLOWED)
def test_own_names_and_allowed_helpers_pass(source, extra):
    assert scan_source(source, extra) == [], source


def test_run_time_names():
    assert is_forbidden("aten._scaled_dot_product_flash_attention_for_cpu.default", ())
    assert is_forbidden("_native_multi_head_attention", ())
    assert is_forbidden("_softmax", SOFTMAX_FAMILY) and is_forbidden("special_logsumexp", SOFTMAX_FAMILY)
    assert not is_forbidden("logaddexp", SOFTMAX_FAMILY) and not is_forbidden("exp", SOFTMAX_FAMILY)
    assert is_forbidden("linear", LINEAR_LAYER) and not is_forbidden("bilinear", LINEAR_LAYER)


def test_prose_in_strings_is_not_a_finding():
    source = "def softmax(x, dim=-1):\n    raise ValueError('this online softmax needs a float tensor')\n"
    assert scan_source(source, SOFTMAX_FAMILY) == []
    assert scan_source("import torch\nf = getattr(torch, 'soft' 'max')\n", SOFTMAX_FAMILY)
