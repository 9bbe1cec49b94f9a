"""close names the keys a wrong attention output really attended to (grader/attention_errors.py)."""
import pytest
import torch

from grader.checks import Attending, Fail, attention_with_key_weights, close

L, S = 10, 12


def inputs(causal):
    rng = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 2, n, 4, generator=rng, dtype=torch.float64) for n in (L, S, S))
    seen = torch.ones(L, S, dtype=torch.bool).tril(S - L) if causal else torch.ones(L, S, dtype=torch.bool)
    return q, k, v, seen


def failure(actual, q, k, v, seen, block_size=None):
    attending = Attending(lambda w: attention_with_key_weights(q, k, v, w), seen, block_size)
    with pytest.raises(Fail) as caught:
        close(actual, attention_with_key_weights(q, k, v, seen.double()), attending=attending)
    return caught.value


def test_last_key_block_dropped_is_named_with_its_keys():
    q, k, v, seen = inputs(causal=False)
    weights = seen.double()
    weights[:, 8:] = 0
    f = failure(attention_with_key_weights(q, k, v, weights), q, k, v, seen, block_size=4)
    assert f.mistake == "last_key_block_dropped"
    assert "the last key block (keys 8..11) dropped" in str(f)


def test_diagonal_blocked_is_named_under_causal():
    q, k, v, seen = inputs(causal=True)
    weights = torch.ones(L, S, dtype=torch.float64).tril(S - L - 1)
    f = failure(attention_with_key_weights(q, k, v, weights), q, k, v, seen)
    assert f.mistake == "diagonal_blocked"
    assert "key i + 2" in str(f)


def test_a_key_block_counted_twice_is_named_for_a_block_size_the_test_did_not_give():
    q, k, v, seen = inputs(causal=False)
    weights = seen.double()
    weights[:, 3:6] = 2
    f = failure(attention_with_key_weights(q, k, v, weights), q, k, v, seen, block_size=4)
    assert f.mistake == "key_block_counted_twice"
    assert "keys 3..5" in str(f)


def test_an_error_of_another_kind_names_no_key_shape():
    q, k, v, seen = inputs(causal=True)
    f = failure(2 * attention_with_key_weights(q, k, v, seen.double()), q, k, v, seen)
    assert f.mistake is None
    assert "2 times the expected one" in str(f)


def test_a_right_output_passes():
    q, k, v, seen = inputs(causal=True)
    right = attention_with_key_weights(q, k, v, seen.double())
    close(right.clone(), right, attending=Attending(lambda w: attention_with_key_weights(q, k, v, w), seen))
