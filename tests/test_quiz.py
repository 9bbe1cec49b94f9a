"""The talking-points quiz (grader/quiz.py): its keys, its generators checked against a direct
computation, the facts its answers state, and `make quiz` driven end to end in a terminal."""
import functools
import json
import math
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from grader import quiz  # noqa: E402

SEEDS = range(25)
DT = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}


def meta_bytes(*shape, dtype):
    t = torch.empty(*shape, dtype=DT[dtype], device="meta")
    return t.numel() * t.element_size()


# -- the direct computations, one per numeric generator ---------------------------------------
def direct_dot_std(p, scale_power=0.0):
    return _sampled_dot_std(p["d_k"]) / p["d_k"] ** scale_power


@functools.cache         # both scaling questions sample the same dot products: draw them once per d_k
def _sampled_dot_std(d_k):
    g = torch.Generator().manual_seed(d_k)
    q = torch.randn(40000, d_k, generator=g, dtype=torch.float64)
    k = torch.randn(40000, d_k, generator=g, dtype=torch.float64)
    return (q * k).sum(-1).std().item()


def direct_mha_scale(p):
    # The scale PyTorch's own attention uses for a head of D // H features: one query, two keys with
    # scores 0 and 1 before scaling; the weight of key 1 is sigmoid(scale).
    d = p["D"] // p["H"]
    q = torch.zeros(1, 1, 1, d, dtype=torch.float64)
    q[..., 0] = 1.0
    k = torch.zeros(1, 1, 2, d, dtype=torch.float64)
    k[..., 1, 0] = 1.0
    v = torch.tensor([0.0, 1.0], dtype=torch.float64).view(1, 1, 2, 1)
    w = F.scaled_dot_product_attention(q, k, v).item()
    return math.log(w / (1 - w))


def direct_causal_blocked(p):
    L, S = p["L"], p["S"]
    return int(torch.ones(L, S, dtype=torch.bool).triu(S - L + 1).sum())


def direct_pairs_allowed(p):
    T, lengths = p["T"], torch.tensor(p["lengths"])
    causal = torch.ones(T, T, dtype=torch.bool).triu(1)
    pad = torch.arange(T)[None, :] >= lengths[:, None]              # (B, S)
    blocked = causal[None] | pad[:, None, :]
    return int((~blocked).sum())


def direct_qk_flops(p):
    from torch.utils.flop_counter import FlopCounterMode
    q = torch.empty(p["B"], p["H"], p["L"], p["d"], device="meta")
    k = torch.empty(p["B"], p["H"], p["S"], p["d"], device="meta")
    with FlopCounterMode(display=False) as counter:
        q @ k.transpose(-2, -1)
    return counter.get_total_flops() / 1e9


def direct_mha_params(p):
    m = nn.MultiheadAttention(p["D"], 4 if p["D"] % 4 == 0 else 1, bias=p["bias"], batch_first=True)
    return sum(t.numel() for t in m.parameters())


def direct_kv_bytes(p, tokens=None):
    seq = p["seq"] if tokens is None else tokens
    one_layer = (meta_bytes(p["batch"], p["kv_heads"], seq, p["head_dim"], dtype=p["dtype"])
                 + meta_bytes(p["batch"], p["kv_heads"], seq, p["head_dim"], dtype=p["dtype"]))
    return p["layers"] * one_layer


def direct_saving(p):
    shape = dict(layers=2, head_dim=64, seq=16, batch=1, dtype="float16")
    return direct_kv_bytes({**shape, "kv_heads": p["H_q"]}) / direct_kv_bytes({**shape, "kv_heads": p["H_kv"]})


def direct_max_context(p):
    per_token = direct_kv_bytes({**p, "seq": 1})
    budget = p["budget_gib"] * 1024 ** 3
    n = 0
    step = 1 << 40
    while step:                                  # the largest n with n tokens fitting, found by search
        if direct_kv_bytes({**p, "seq": 1}) * (n + step) <= budget:
            n += step
        step >>= 1
    assert n * per_token <= budget < (n + 1) * per_token
    return n


def direct_proj_saved(p):
    d = p["D"] // p["H"]
    mha = sum(t.numel() for lin in (nn.Linear(p["D"], p["D"], bias=False),) * 2 for t in lin.parameters())
    gqa = sum(t.numel() for lin in (nn.Linear(p["D"], p["H_kv"] * d, bias=False),) * 2 for t in lin.parameters())
    return mha - gqa


def direct_rope_angle(p):
    inv_freq = 1.0 / (p["base"] ** (torch.arange(0, p["d"], 2, dtype=torch.float64) / p["d"]))
    return (p["p"] * inv_freq[p["i"]]).item()


def direct_wavelength(p):
    div_term = torch.exp(torch.arange(0, p["d"], 2, dtype=torch.float64) * (-math.log(10000.0) / p["d"]))
    return (2 * math.pi / div_term[p["i"]]).item()


def direct_online_sum(p):
    s = torch.tensor(p["block1"] + p["block2"], dtype=torch.float64)
    return torch.exp(s - s.max()).sum().item()


def direct_causal_tiles(p):
    L, b = p["L"], p["block"]
    allowed = ~torch.ones(L, L, dtype=torch.bool).triu(1)
    return sum(bool(allowed[i:i + b, j:j + b].any()) for i in range(0, L, b) for j in range(0, L, b))


def direct_softmax_entry(p):
    x = torch.tensor(p["x"], dtype=torch.float64)
    jac = torch.autograd.functional.jacobian(lambda t: torch.softmax(t, -1), x)
    return jac[p["i"], p["j"]].item()


DIRECT = {
    "scaling.dot_std": (direct_dot_std, 0.03),
    "scaling.wrong_scale_std": (lambda p: direct_dot_std(p, 1.0), 0.03),
    "scaling.mha_scale": (direct_mha_scale, 1e-9),
    "scaling.exp_overflow": (lambda p: math.log(torch.finfo(DT[p["dtype"]]).max), 1e-9),
    "masking.causal_blocked": (direct_causal_blocked, 0),
    "masking.pairs_allowed": (direct_pairs_allowed, 0),
    "complexity.score_bytes": (lambda p: meta_bytes(p["B"], p["H"], p["L"], p["L"], dtype=p["dtype"]) / 2 ** 20, 1e-12),
    "complexity.qk_flops": (direct_qk_flops, 1e-12),
    "complexity.mha_params": (direct_mha_params, 0),
    "gqa.kv_cache_bytes": (lambda p: direct_kv_bytes(p) / 2 ** 30, 1e-12),
    "gqa.saving_factor": (direct_saving, 1e-12),
    "gqa.max_context": (direct_max_context, 0),
    "gqa.proj_params_saved": (direct_proj_saved, 0),
    "positions.rope_angle": (direct_rope_angle, 1e-9),
    "positions.sin_wavelength": (direct_wavelength, 1e-9),
    "flash.online_sum": (direct_online_sum, 1e-9),
    "flash.causal_tiles": (direct_causal_tiles, 0),
    "gradient.softmax_entry": (direct_softmax_entry, 1e-9),
}

NUMERIC = [key for key, _, kind, _ in quiz.GENERATORS if kind == "number"]
CHOICE = [key for key, _, kind, _ in quiz.GENERATORS if kind == "choice"]


def make(key, seed):
    gen = next(g for k, _, _, g in quiz.GENERATORS if k == key)
    return gen(random.Random(seed))


def test_enough_questions_on_every_topic():
    assert len(quiz.GENERATORS) >= 40
    assert len({k for k, *_ in quiz.GENERATORS}) == len(quiz.GENERATORS), "question keys must be unique"
    for topic in quiz.TOPICS:
        kinds = {kind for _, t, kind, _ in quiz.GENERATORS if t == topic}
        assert len(quiz.generators(topic)) >= 4, topic
        assert "choice" in kinds, topic
    assert {t for _, t, _, _ in quiz.GENERATORS} == set(quiz.TOPICS)
    assert len(NUMERIC) >= 10


def test_every_numeric_generator_has_a_direct_computation():
    assert set(NUMERIC) == set(DIRECT)


@pytest.mark.parametrize("key", NUMERIC)
def test_numeric_generator_agrees_with_a_direct_computation(key):
    direct, tol = DIRECT[key]
    seen = {}
    for seed in SEEDS:
        q = make(key, seed)
        assert q.kind == "number" and q.topic == key.split(".")[0]
        assert q.explanation and q.reading.startswith("exercises/")
        assert (REPO / q.reading.split(" §")[0]).is_file(), q.reading
        params = json.dumps(q.params, sort_keys=True)
        if params not in seen:
            seen[params] = direct(q.params)
        expected = seen[params]
        assert math.isclose(q.answer, expected, rel_tol=tol, abs_tol=tol), (key, q.params, q.answer, expected)
        # The checker accepts the direct value and refuses a clearly different one.
        assert quiz.check(q, repr(expected)) is True
        assert quiz.check(q, repr(expected * 1.5 + 1)) is False
    assert len(seen) > 1, f"{key}: the parameters should change from one draw to the next"


@pytest.mark.parametrize("key", CHOICE)
def test_choice_question_is_keyed(key):
    rights = set()
    for seed in range(8):
        q = make(key, seed)
        assert q.kind == "choice" and len(q.choices) == 4 and len(set(q.choices)) == 4
        assert 0 <= q.answer < len(q.choices)
        rights.add(q.choices[q.answer])
        assert quiz.check(q, "abcd"[q.answer]) is True
        assert quiz.check(q, str(q.answer + 1)) is True
        assert quiz.check(q, "abcd"[(q.answer + 1) % 4]) is False
        assert quiz.check(q, "z") is None
        assert (REPO / q.reading.split(" §")[0]).is_file(), q.reading
    assert len(rights) == 1, "the keyed answer is the same text whatever the shuffle"
    others = [len(c) for i, c in enumerate(q.choices) if i != q.answer]
    assert len(q.choices[q.answer]) <= 1.25 * max(others), "the right answer must not stand out by its length"
    assert len({tuple(make(key, s).choices) for s in range(8)}) > 1, "choices are shuffled"


def test_numbers_and_arithmetic_are_accepted():
    assert quiz.parse_number("2*32*128") == 8192
    assert quiz.parse_number("1,024") == 1024
    assert quiz.parse_number("2^30") == 2 ** 30
    assert quiz.parse_number("1/sqrt(64)") == 0.125
    assert quiz.parse_number("3.5 GiB") == 3.5
    assert quiz.parse_number("1.5e9") == 1.5e9
    for bad in ("", "abc", "__import__('os')", "2**1000000", "1/0", "[1]"):
        assert quiz.parse_number(bad) is None


# -- the facts the answers state --------------------------------------------------------------
def test_fact_fp32_min_fill_on_fp16_raises():
    scores = torch.zeros(2, 3, dtype=torch.float16)
    with pytest.raises(RuntimeError):
        scores.masked_fill(torch.ones(2, 3, dtype=torch.bool), torch.finfo(torch.float32).min)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
def test_fact_all_minus_inf_row_is_nan_and_finite_fill_is_uniform(dtype):
    row = torch.full((1, 5), float("-inf"), dtype=dtype)
    assert torch.isnan(torch.softmax(row, -1)).all()
    assert torch.isnan(torch.softmax(row.float(), -1)).all()
    wide = (lambda t: t.float()) if dtype in (torch.float16, torch.bfloat16) else (lambda t: t)
    filled = torch.full((1, 5), torch.finfo(dtype).min, dtype=dtype)
    assert torch.allclose(torch.softmax(wide(filled), -1).double(), torch.full((1, 5), 0.2, dtype=torch.float64))
    partial = torch.tensor([[3.0, -1.0, 0.0, 0.0]], dtype=dtype)
    partial = partial.masked_fill(torch.tensor([[False, False, True, True]]), torch.finfo(dtype).min)
    p = torch.softmax(wide(partial), -1)
    assert (p[0, 2:] == 0).all() and math.isclose(p.sum().item(), 1.0, rel_tol=1e-6)


def rope(x, pos, base=10000.0):
    d = x.shape[-1]
    inv = base ** (-torch.arange(0, d, 2, dtype=torch.float64) / d)
    ang = pos * inv
    cos, sin = torch.cat([ang.cos(), ang.cos()]), torch.cat([ang.sin(), ang.sin()])
    x1, x2 = x[..., :d // 2], x[..., d // 2:]
    return x * cos + torch.cat([-x2, x1], -1) * sin


def test_fact_rope_depends_on_the_signed_offset_and_keeps_norms():
    g = torch.Generator().manual_seed(0)
    q, k = torch.randn(16, generator=g, dtype=torch.float64), torch.randn(16, generator=g, dtype=torch.float64)
    s = lambda m, n: (rope(q, m) @ rope(k, n)).item()  # noqa: E731
    assert math.isclose(s(7, 3), s(107, 103), rel_tol=1e-9)
    assert not math.isclose(s(7, 3), s(3, 7), rel_tol=1e-3)     # +4 and -4 differ
    assert math.isclose(rope(q, 9).norm().item(), q.norm().item(), rel_tol=1e-12)


def test_fact_attention_without_positions_is_permutation_equivariant():
    torch.manual_seed(0)
    m = nn.MultiheadAttention(16, 4, batch_first=True).eval()
    x = torch.randn(1, 6, 16)
    perm = torch.randperm(6)
    out, _ = m(x, x, x)
    out_p, _ = m(x[:, perm], x[:, perm], x[:, perm])
    assert torch.allclose(out[:, perm], out_p, atol=1e-6)


def test_fact_softmax_gradients():
    x = torch.tensor([0.3, -1.0, 2.0, 0.5], dtype=torch.float64, requires_grad=True)
    p = torch.softmax(x, -1)
    jac = torch.autograd.functional.jacobian(lambda t: torch.softmax(t, -1), x.detach())
    assert torch.allclose(jac, torch.diag(p) - torch.outer(p, p))
    (g,) = torch.autograd.grad(p.sum(), x)
    assert torch.allclose(g, torch.zeros(4, dtype=torch.float64), atol=1e-12)
    # dS = P ⊙ (dP − rowsum(dP ⊙ P)); dV = Pᵀ dO; dQ = dS K · scale.
    q = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    k = torch.randn(5, 4, dtype=torch.float64, requires_grad=True)
    v = torch.randn(5, 2, dtype=torch.float64, requires_grad=True)
    sc = 0.5
    S = q @ k.T * sc
    P = torch.softmax(S, -1)
    O = P @ v
    dO = torch.randn(3, 2, dtype=torch.float64)
    dq, dk, dv = torch.autograd.grad(O, (q, k, v), dO)
    dP = dO @ v.T
    dS = P * (dP - (dP * P).sum(-1, keepdim=True))
    assert torch.allclose(dv, P.T @ dO) and torch.allclose(dq, dS @ k * sc) and torch.allclose(dk, dS.T @ q * sc)
    assert torch.allclose((dP * P).sum(-1), (dO * O).sum(-1))


def test_fact_numpy_versus_torch():
    a = np.zeros((2, 3, 4, 5))
    assert a.T.shape == (5, 4, 3, 2)
    assert np.swapaxes(a, -1, -2).shape == (2, 3, 5, 4)
    assert np.random.randn(3).dtype == np.float64 and torch.randn(3).dtype == torch.float32
    values, indices = torch.max(torch.randn(2, 3), dim=-1)
    assert values.shape == indices.shape == (2,)
    assert np.max(np.ones((2, 3)), axis=-1).shape == (2,)
    x, y = np.ones((2, 3, 4)), np.ones((2, 4, 5))
    assert (x @ y).shape == (2, 3, 5) and np.dot(x, y).shape == (2, 3, 2, 5)


def test_fact_heads_keep_flops_and_grow_score_memory():
    from torch.utils.flop_counter import FlopCounterMode
    flops = []
    for H in (4, 8):
        q = torch.empty(1, H, 128, 256 // H, device="meta")
        with FlopCounterMode(display=False) as c:
            q @ q.transpose(-2, -1)
        flops.append(c.get_total_flops())
    assert flops[0] == flops[1]


# -- the results and the command --------------------------------------------------------------
def test_results_are_kept_per_topic(tmp_path, monkeypatch):
    monkeypatch.setattr("grader.study.state.QUIZ_STATE", tmp_path / "quiz.json")
    questions = quiz.draw(random.Random(1), 3, "gqa")
    assert len(questions) == 3 and {q.topic for q in questions} == {"gqa"}
    replies = iter([questions[0].right_text.split(")")[0] if questions[0].kind == "choice"
                    else repr(questions[0].answer), "q"])
    out = []
    session = quiz.run("gqa", 3, seed=1, read=lambda prompt: next(replies), write=out.append)
    assert session["asked"] == 1 and session["right"] == 1
    data = json.loads((tmp_path / "quiz.json").read_text())
    assert data["topics"]["gqa"] == {"asked": 1, "right": 1, "last": data["topics"]["gqa"]["last"]}
    assert any("Score: 1/1" in line for line in out)


def test_no_question_comes_back_before_its_topic_is_used_up(tmp_path, monkeypatch):
    monkeypatch.setattr("grader.study.state.QUIZ_STATE", tmp_path / "quiz.json")
    pool = {k for k, t, *_ in quiz.GENERATORS if t == "gqa"}
    per_run, rounds, this_round = 3, 0, set()
    for seed in range(3 * len(pool)):
        session = quiz.run("gqa", per_run, seed=seed, read=lambda prompt: "1", write=lambda line: None)
        keys = {q["key"] for q in session["questions"]}
        assert len(keys) == per_run, "one run never asks a question twice"
        left = pool - this_round
        if len(left) > per_run:
            assert keys <= left, f"run {seed} repeats {sorted(keys - left)} while {sorted(left - keys)} wait"
            this_round |= keys
        else:                     # the round ends in this run: what was left, then the first of a new round
            assert left <= keys, f"run {seed} leaves {sorted(left - keys)} for later and repeats instead"
            this_round, rounds = keys - left, rounds + 1
    assert rounds >= 2
    # A run on every topic draws first what no run has asked in this round either.
    quiz.run("gqa", 1, seed=0, read=lambda prompt: "1", write=lambda line: None)
    seen = quiz.seen_keys()
    assert seen and all(q.key not in seen for q in quiz.draw(random.Random(0), 10, seen=seen))


def test_a_topic_alias_and_an_unknown_topic():
    assert quiz.resolve_topic("RoPE") == "positions"
    assert quiz.resolve_topic("mqa") == "gqa"
    with pytest.raises(ValueError):
        quiz.resolve_topic("vibes")
    assert quiz.main(["vibes"]) == 2


@pytest.fixture
def course(tmp_path):
    root = tmp_path / "course"
    shutil.copytree(REPO / "grader", root / "grader", ignore=shutil.ignore_patterns("__pycache__", "tests"))
    (root / "exercises").mkdir()
    for reading in (REPO / "exercises").glob("[0-9][0-9]_*.md"):     # the readings the questions cite
        shutil.copy(reading, root / "exercises" / reading.name)
    for name in ("Makefile", "requirements.txt"):
        shutil.copy(REPO / name, root / name)
    (root / ".venv" / "bin").mkdir(parents=True)
    wrapper = root / ".venv" / "bin" / "python"
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    wrapper.chmod(0o755)
    (root / ".venv" / ".installed").touch()
    return root


def reply_for(q, right):
    if q.kind == "choice":
        return "abcd"[q.answer if right else (q.answer + 1) % 4]
    return repr(q.answer if right else q.answer * 3 + 7)


@pytest.mark.skipif(os.name != "posix" or not shutil.which("make"), reason="needs a pseudo-terminal and make")
def test_make_quiz_end_to_end_in_a_terminal(course):
    from ptyterm import Terminal
    questions = quiz.draw(random.Random(7), 3, "flash")      # what `make quiz` will ask, seed 7
    t = Terminal(["make", "--no-print-directory", "quiz", "flash", "N=3", "SEED=7"], course)
    try:
        t.wait_for(r"Quiz on flash .*3 questions \(seed 7\)")
        t.wait_for(r"(?s)\[1/3\].*Your answer")
        assert questions[0].prompt[:40] in t.text()
        mark = t.mark()
        t.type(reply_for(questions[0], True))
        t.wait_for(r"✓ Right\.", since=mark)
        t.wait_for(r"Read: exercises/14_flash_attention\.md", since=mark)
        mark = t.mark()
        t.type("not an answer")
        t.wait_for(r"Answer with a", since=mark)
        t.type(reply_for(questions[1], False))
        t.wait_for(r"✗ Not quite: the answer is", since=mark)
        mark = t.mark()
        t.type(reply_for(questions[2], True))
        t.wait_for(r"Score: 2/3\.", since=mark)
        t.wait_for(r"flash\s+2/3 \(67%\)", since=mark)
        assert t.wait_exit() == 0
    finally:
        t.close()
    data = json.loads((course / ".grade" / "quiz.json").read_text())
    assert data["topics"]["flash"]["asked"] == 3 and data["topics"]["flash"]["right"] == 2
    assert [q["right"] for q in data["sessions"][-1]["questions"]] == [True, False, True]

    # Ctrl-C ends a quiz early and keeps what was answered.
    questions = quiz.draw(random.Random(8), 4, None)
    t = Terminal(["make", "--no-print-directory", "quiz", "N=4", "SEED=8"], course)
    try:
        t.wait_for(r"\[1/4\]")
        t.type(reply_for(questions[0], True))
        t.wait_for(r"\[2/4\]")
        t.press(b"\x03")
        t.wait_for(r"Score: 1/1 \(stopped after 1 of 4\)")
        t.wait_exit()
    finally:
        t.close()
    data = json.loads((course / ".grade" / "quiz.json").read_text())
    assert len(data["sessions"]) == 2 and data["sessions"][-1]["asked"] == 1


@pytest.mark.skipif(not shutil.which("make"), reason="needs make")
def test_make_quiz_takes_the_topic_either_way():
    def dry(*goals):
        out = subprocess.run(["make", "-n", "--no-print-directory", *goals], cwd=REPO, capture_output=True, text=True,
                             timeout=30)
        return out.stdout.splitlines()[0].split()
    assert dry("quiz", "gqa")[3:] == ["gqa"]
    assert dry("quiz", "TOPIC=rope", "N=3")[3:] == ["rope", "--count", "3"]
    assert dry("quiz")[3:] == []
