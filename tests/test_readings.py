"""The numbers the readings and hints state are computed here, so that the text cannot drift.

Each check names a phrase that must stay in the file and computes what it claims.
"""
import math

import pytest
import torch

from helpers import REPO

EX = REPO / "exercises"
HINTS = EX / "hints"


def text(path):
    return " ".join(path.read_text().split())      # one line: phrases may wrap


def says(path, phrase):
    assert " ".join(phrase.split()) in text(path), f"{path.relative_to(REPO)} no longer says: {phrase}"


def kv_cache_bytes(batch, seq_len, layers, kv_heads, head_dim, bytes_per_element):
    return 2 * batch * seq_len * layers * kv_heads * head_dim * bytes_per_element


def test_exp_overflow_thresholds():
    says(EX / "05_softmax.md", "float32 at about 88, float16 at about 11")
    assert int(math.log(torch.finfo(torch.float32).max)) == 88
    assert int(math.log(torch.finfo(torch.float16).max)) == 11
    says(HINTS / "05_softmax.md", "float16 overflows past exp(11)")
    assert torch.isinf(torch.tensor(11.1).to(torch.float16).exp()) and torch.isinf(torch.tensor(1000.0).exp())


def test_fills_that_do_not_fit_float16_raise():
    says(HINTS / "04_mask.md", "its largest magnitude is 65504")
    assert torch.finfo(torch.float16).max == 65504
    scores = torch.zeros(2, 2, dtype=torch.float16)
    mask = torch.eye(2, dtype=torch.bool)
    for value, phrase in ((-1e9, "`masked_fill` on float16 scores raises"),
                          (torch.finfo(torch.float32).min, "masked_fill` on float16 scores raises an overflow")):
        says(HINTS / "04_mask.md", phrase)
        with pytest.raises(RuntimeError, match="overflow"):
            scores.masked_fill(mask, value)
    says(HINTS / "04_mask.md", "cast to float16, becomes -inf")
    assert torch.isneginf(torch.tensor(torch.finfo(torch.float32).min).to(torch.float16))
    says(HINTS / "04_mask.md", "float32's min (about -3.4e38)")
    assert f"{torch.finfo(torch.float32).min:.1e}" == "-3.4e+38"
    # the fill keeps a fully masked row finite, and uniform, in every dtype
    for dtype in (torch.float16, torch.bfloat16, torch.float32, torch.float64):
        row = torch.zeros(4, dtype=dtype).masked_fill(torch.ones(4, dtype=torch.bool), torch.finfo(dtype).min)
        wide = torch.promote_types(dtype, torch.float32)
        p = torch.softmax(row.to(wide), -1)
        assert torch.allclose(p, torch.full((4,), 0.25, dtype=wide))
        assert torch.isnan(torch.softmax(torch.full((4,), float("-inf"), dtype=dtype).to(wide), -1)).all()
    says(EX / "05_softmax.md", "is NaN in every dtype")


def test_kv_cache_sizes():
    # Llama 3 8B: 32 layers, 8 kv heads of 128, bfloat16; about 8.03e9 parameters
    per_token = kv_cache_bytes(1, 1, 32, 8, 128, 2)
    assert per_token == 128 * 1024
    says(EX / "13_kv_cache.md", "128 KiB per token")
    assert kv_cache_bytes(1, 8192, 32, 8, 128, 2) == 2 ** 30
    assert kv_cache_bytes(32, 8192, 32, 8, 128, 2) == 32 * 2 ** 30
    assert round(8.03e9 * 2 / 1e9) == 16
    for path in (EX / "13_kv_cache.md", EX / "11_grouped_query_attention.md"):
        says(path, "16 GB of weights")
    says(EX / "11_grouped_query_attention.md", "at batch 1 and 8k tokens the cache is 1 GiB")
    says(EX / "11_grouped_query_attention.md", "at batch 32 it is 32 GiB")
    # the 70B-style figure in exercise 11's hidden test: 80 layers, 8 kv heads of 128, float16, 4096 tokens
    assert kv_cache_bytes(1, 4096, 80, 8, 128, 2) == 1_342_177_280


def test_attention_overtakes_the_projections_at_twice_d_model():
    says(EX / "10_multi_head_attention.md", "once S exceeds about 2D")
    D = 512
    projections = 4 * D * D                       # multiply-adds per token: q, k, v, out
    attention = lambda S: 2 * S * D               # scores and P·V per token
    assert attention(2 * D) == projections and attention(2 * D - 1) < projections < attention(2 * D + 1)


def test_half_precision_spacing_at_far_positions():
    says(HINTS / "12_positional_encoding.md", "float16 steps by 0.5 and bfloat16 by 4")
    for dtype, step in ((torch.float16, 0.5), (torch.bfloat16, 4.0)):
        x = torch.tensor(1000.0, dtype=dtype)
        assert float(torch.nextafter(x, torch.tensor(2000.0, dtype=dtype)) - x) == step


def test_causal_skipping_does_about_56_percent_of_the_tiles():
    # exercise 14's hidden test: L = S = 256, block 32; the causal loop visits the tiles on and below the diagonal
    n = 256 // 32
    assert round(100 * (n * (n + 1) / 2) / n ** 2) == 56


def test_rope_depends_on_the_signed_offset():
    says(EX / "12_positional_encoding.md", "signed offset n − m")
    q, k = torch.randn(8, dtype=torch.float64), torch.randn(8, dtype=torch.float64)

    def rot(x, p):
        half = x.shape[-1] // 2
        ang = p * 10000.0 ** (-torch.arange(half, dtype=torch.float64) * 2 / x.shape[-1])
        x1, x2 = x[:half], x[half:]
        return torch.cat((x1 * ang.cos() - x2 * ang.sin(), x2 * ang.cos() + x1 * ang.sin()))

    same = rot(q, 7) @ rot(k, 3), rot(q, 104) @ rot(k, 100)     # offset +4 twice
    flipped = rot(q, 3) @ rot(k, 7)                               # offset −4
    assert torch.isclose(*same) and not torch.isclose(same[0], flipped)
