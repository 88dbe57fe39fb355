"""Hessian-vector products chunk by chunk: the same products as the kept graph and the dense Hessian, one chunk at a time."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from landscape_probe import params as P
from landscape_probe.slicing.evaluator import ProbeEvaluator
from tests.slicing.test_engine import class_data, small_mlp

NAMES = ["0.weight", "2.weight", "4.weight"]


def test_chunked_products_equal_the_kept_graphs_and_the_dense_hessian() -> None:
    model, (x, y) = small_mlp(nn.Tanh), class_data(n=11)
    chunked = ProbeEvaluator(model, x, y, "cross_entropy", NAMES, batch_size=4)
    at_w, hessian = chunked.evaluate_with_hessian(chunked.base, keep_graph=False)
    whole = ProbeEvaluator(model, x, y, "cross_entropy", NAMES)
    at_w_whole, graph = whole.evaluate_with_hessian(whole.base)
    flat = P.flatten(chunked.base)
    dense = torch.func.hessian(lambda w: whole.loss_fn(P.unflatten(w, whole.base)))(flat)
    for seed in (0, 1):
        v = torch.randn(flat.numel(), generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
        product = hessian.flat_hessian_vector_product(v)
        torch.testing.assert_close(product, graph.flat_hessian_vector_product(v), rtol=1e-12, atol=1e-14)
        torch.testing.assert_close(product, dense @ v, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(P.flatten(hessian.gradient), P.flatten(at_w_whole.gradient), rtol=1e-12, atol=1e-14)
    assert float(hessian.loss) == pytest.approx(float(at_w_whole.loss), rel=1e-14) and hessian.loss is at_w.loss


def test_each_product_runs_the_model_on_one_chunk_at_a_time() -> None:
    model, (x, y) = small_mlp(nn.Tanh), class_data(n=11)
    evaluator = ProbeEvaluator(model, x, y, "cross_entropy", NAMES, batch_size=4)
    _, hessian = evaluator.evaluate_with_hessian(evaluator.base, keep_graph=False)
    seen: list[int] = []
    handle = model.register_forward_pre_hook(lambda module, inputs: seen.append(len(inputs[0])))
    hessian.add_hessian_vector_product(torch.ones(P.numel(evaluator.base), dtype=torch.float64),
                                       torch.zeros(P.numel(evaluator.base), dtype=torch.float64))
    handle.remove()
    assert seen == [4, 4, 3]  # a kept graph would run no forward pass at all
    hessian.release()
    with pytest.raises(RuntimeError, match="released"):
        hessian.flat_hessian_vector_product(torch.ones(P.numel(evaluator.base), dtype=torch.float64))
