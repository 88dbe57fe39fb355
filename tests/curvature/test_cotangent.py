"""backward_with against torch.autograd.backward(tensors, grad_tensors): the same gradients, bit for bit."""

from __future__ import annotations

import torch

from landscape_probe.curvature.cotangent import backward_with


def two_graphs(dtype: torch.dtype = torch.float64) -> tuple[list[torch.Tensor], ...]:
    """The same second-order graph built twice: g = ∇ f(a, b) with create_graph, for two sets of leaves."""
    out = []
    for _ in range(2):
        generator = torch.Generator().manual_seed(0)
        a = torch.randn(3, 4, generator=generator, dtype=dtype).requires_grad_(True)
        b = torch.randn(4, generator=generator, dtype=dtype).requires_grad_(True)
        x = torch.randn(5, 3, generator=generator, dtype=dtype)
        loss = torch.tanh(x @ a + b).pow(3).sum()
        parts = torch.autograd.grad(loss, [a, b], create_graph=True)
        out.append(([a, b], list(parts)))
    return out


def test_the_same_gradients_as_torch_bit_for_bit_and_the_graph_kept():
    (leaves, parts), (leaves_ref, parts_ref) = two_graphs()
    generator = torch.Generator().manual_seed(1)
    vectors = [torch.randn(p.shape, generator=generator, dtype=p.dtype) for p in parts]
    for _ in range(2):  # retain_graph: a second call adds the same again
        backward_with(parts, vectors, inputs=leaves, retain_graph=True)
        torch.autograd.backward(parts_ref, vectors, inputs=leaves_ref, retain_graph=True)
        for leaf, reference in zip(leaves, leaves_ref, strict=True):
            assert torch.equal(leaf.grad, reference.grad)


def test_it_works_under_no_grad_with_inference_vectors_and_casts_the_dtype():
    (leaves, parts), (leaves_ref, parts_ref) = two_graphs()
    with torch.inference_mode():
        vectors = [torch.ones(p.shape, dtype=torch.float32) for p in parts]  # float32 for float64 tensors
    with torch.no_grad():
        backward_with(parts, vectors, inputs=leaves)
    torch.autograd.backward(parts_ref, [v.clone() for v in vectors], inputs=leaves_ref)
    for leaf, reference in zip(leaves, leaves_ref, strict=True):
        assert leaf.grad.dtype == torch.float64 and torch.equal(leaf.grad, reference.grad)


def test_no_tensors_is_nothing_to_do():
    leaf = torch.ones(2, requires_grad=True)
    backward_with([], [], inputs=[leaf])
    assert leaf.grad is None
