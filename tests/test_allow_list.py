"""The dispatch watch's allow-list, in process: what runs is elementary or it is a finding,
refused before it runs; work and memory are counted where every route passes."""
import pytest
import torch

from grader.sandbox import watch as watching
from grader.sandbox.watch import ELEMENTARY, SOFTMAX_FAMILY, LINEAR_LAYER, Watch, elementary

pytestmark = pytest.mark.fast
aten = torch.ops.aten


def run(fn, extra=(), **options):
    w = Watch(extra, **options)
    try:
        with w.mode():
            fn()
    except RuntimeError:
        pass
    return w


@pytest.mark.parametrize("op", [aten._masked_softmax.default, aten.logcumsumexp.default, aten.cumsum.default,
                                aten._transformer_encoder_layer_fwd.default,
                                aten._scaled_dot_product_flash_attention_for_cpu.default, aten.linalg_svd.default,
                                aten._safe_softmax.default])
def test_what_is_not_elementary_is_a_finding(op):
    assert elementary(op, ()) is not None


def test_the_library_softmax_is_allowed_only_where_the_exercise_allows_it():
    for op in (aten._softmax.default, aten.logsumexp.default, aten._log_softmax.default):
        assert elementary(op, ()) is None
        assert elementary(op, SOFTMAX_FAMILY) is not None


@pytest.mark.parametrize("route", [
    lambda a, b: torch.einsum("ij,kj->ik", a, b), lambda a, b: torch.baddbmm(a[None], a[None], b.T[None]),
    lambda a, b: torch.addmm(a, a, b.T), lambda a, b: torch.exp2(a).log2(), lambda a, b: torch.where(a > 0, a, b),
    lambda a, b: torch.triu(a, 1) + torch.tril(b), lambda a, b: torch.nan_to_num(a / 0), lambda a, b: torch.cat([a, b]),
    lambda a, b: torch.stack([a, b]), lambda a, b: torch.softmax(a, -1), lambda a, b: a.masked_fill(a > 0, -1e4),
    lambda a, b: torch.polar(a.abs(), b).real, lambda a, b: torch.view_as_complex(torch.stack([a, b], -1)) * 2,
    lambda a, b: a.amax(-1, keepdim=True), lambda a, b: torch.inner(a, b), lambda a, b: a.new_zeros(3).index_put_(
        (torch.tensor([0]),), torch.ones(1)), lambda a, b: a @ b.T, lambda a, b: torch.logaddexp(a, b)])
def test_every_elementary_route_is_allowed(route):
    a, b = torch.randn(4, 4), torch.randn(4, 4)
    w = run(lambda: route(a, b))
    assert w.forbidden == []


def test_linear_is_named_where_forbidden_although_it_decomposes_before_dispatch():
    x, weight = torch.randn(2, 3), torch.randn(4, 3)
    assert run(lambda: torch.nn.functional.linear(x, weight)).forbidden == []
    assert run(lambda: torch.nn.functional.linear(x, weight), LINEAR_LAYER).forbidden


def test_a_custom_operator_is_refused_before_its_body_runs():
    ran = []
    lib = torch.library.Library("allowlisttest", "DEF")
    lib.define("attend(Tensor q) -> Tensor")

    def body(q):
        ran.append(1)
        return torch.nn.functional.scaled_dot_product_attention(q, q, q)

    lib.impl("attend", body, "CompositeExplicitAutograd")
    w = run(lambda: torch.ops.allowlisttest.attend(torch.randn(1, 2, 3)))
    assert w.forbidden and "custom" in w.forbidden[0] and ran == []


def test_work_and_memory_are_counted_at_the_aten_level_whatever_the_route():
    q, k = torch.randn(64, 16), torch.randn(64, 16)
    by_matmul = run(lambda: q @ k.T)
    by_inner = run(lambda: torch.inner(q, k))
    by_hand = run(lambda: (q[:, None, :] * k[None, :, :]).sum(-1))
    assert by_matmul.matmul_flops == by_inner.matmul_flops == 2 * 64 * 64 * 16
    assert by_hand.work >= 64 * 64 * 16          # the elementwise products are work too
    views = run(lambda: q[:, None, :].expand(64, 1000, 16))
    assert views.largest == 0                   # a view allocates nothing


def test_an_operator_and_a_function_are_named_by_what_runs_not_by_their_names():
    """Names are attributes a submission can rewrite: an operator is named by the C++ operation it
    runs, a function by identity (both learnt before any submission runs)."""
    op, mha = aten._safe_softmax.default, torch.nn.functional.multi_head_attention_forward
    saved = (op._name, op.__name__, op._overloadpacket.__name__, mha.__name__)
    x = torch.randn(2, 3)
    try:
        op._name, op.__name__, op._overloadpacket.__name__, mha.__name__ = "aten::exp", "exp.default", "exp", "mm"
        w = run(lambda: op(x, -1))
        assert w.forbidden and w.forbidden[0].startswith("aten.exp (an operator that calls itself that but runs "
                                                         "something else"), w.forbidden
        assert watching.function_name(mha) == "multi_head_attention_forward"
        assert run(lambda: torch.ops.aten.exp.default(x)).forbidden == []
    finally:
        op._name, op.__name__, op._overloadpacket.__name__, mha.__name__ = saved


class _OwnFunctionHandler(torch.Tensor):
    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        return super().__torch_function__(func, types, args, kwargs or {})


class _OwnDispatchHandler(torch.Tensor):
    @staticmethod
    def __new__(cls, elem):
        made = torch.Tensor._make_wrapper_subclass(cls, elem.shape, dtype=elem.dtype)
        made.elem = elem
        return made

    @classmethod
    def __torch_dispatch__(cls, func, types, args=(), kwargs=None):
        return func(*[a.elem if type(a) is cls else a for a in args], **(kwargs or {}))


def test_a_tensor_subclass_with_handlers_of_its_own_is_refused_before_they_run():
    """A subclass's own handler runs after the watch has passed the call on, where it would not be
    watched: refused. Subclasses that keep torch's handlers (nn.Parameter, a plain subclass) run."""
    x = torch.randn(2, 3)
    w = run(lambda: x.as_subclass(_OwnFunctionHandler) + 1)
    assert w.forbidden and "own __torch_function__ (_OwnFunctionHandler)" in w.forbidden[0], w.forbidden
    w = run(lambda: _OwnDispatchHandler(x).exp())
    assert any("own __torch_dispatch__ (_OwnDispatchHandler)" in f for f in w.forbidden), w.forbidden

    class Plain(torch.Tensor):
        pass
    assert run(lambda: torch.nn.Parameter(x) * 2 + x.as_subclass(Plain)).forbidden == []
