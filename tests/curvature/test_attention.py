"""Second derivatives through attention: nn.TransformerEncoder (fused SDPA kernels) and the zoo transformer.

Fused scaled-dot-product attention has no double backward; every Hessian-vector
product runs under the math backend (``curvature.hessian.differentiable_twice``).
Each λ_max is checked against the eigenvalues of the dense float64 Hessian.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import landscape_probe as lp
from landscape_probe import params as P
from landscape_probe.curvature.hessian import (
    gaussian_like,
    hessian_vector_product,
    hessian_vector_product_forward_over_reverse,
    top_hessian_eigenvalue,
)
from landscape_probe.models.transformer import Transformer

VOCABULARY, SEQUENCE, CLASSES = 7, 5, 3


class TextModel(nn.Module):
    """Embedding → TransformerEncoder (PyTorch's, fused attention) → mean over tokens → Linear."""

    def __init__(self, width: int = 4, heads: int = 2) -> None:
        super().__init__()
        self.embed = nn.Embedding(VOCABULARY, width)
        layer = nn.TransformerEncoderLayer(width, heads, dim_feedforward=6, dropout=0.0, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, num_layers=1, enable_nested_tensor=False)
        self.head = nn.Linear(width, CLASSES)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(self.embed(tokens)).mean(dim=1))


def tokens(n: int = 6, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, VOCABULARY, (n, SEQUENCE), generator=g), torch.randint(0, CLASSES, (n,), generator=g)


def loss_fn_of(model: nn.Module, x: torch.Tensor, y: torch.Tensor):
    def loss_fn(p: dict[str, torch.Tensor]) -> torch.Tensor:
        return nn.functional.cross_entropy(torch.func.functional_call(model, p, (x,), strict=False), y)

    return loss_fn


def dense_eigenvalues(loss_fn, params) -> torch.Tensor:
    """Eigenvalues of the dense Hessian, column by column with plain double backward under the math kernel."""
    flat = P.flatten(params).detach().requires_grad_(True)
    from torch.nn.attention import SDPBackend, sdpa_kernel

    with sdpa_kernel(SDPBackend.MATH):
        gradient = torch.autograd.grad(loss_fn(P.unflatten(flat, params)), flat, create_graph=True)[0]
        rows = [torch.autograd.grad(gradient[i], flat, retain_graph=True)[0] for i in range(len(flat))]
    hessian = torch.stack(rows)
    torch.testing.assert_close(hessian, hessian.T, rtol=1e-9, atol=1e-12)
    return torch.linalg.eigvalsh(hessian)


def largest_magnitude(eigenvalues: torch.Tensor) -> float:
    return float(eigenvalues[eigenvalues.abs().argmax()])


def weights(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach() for k, v in model.named_parameters() if v.ndim >= 2}


def text_model() -> TextModel:
    torch.manual_seed(0)
    return TextModel().double().eval()


def test_fused_attention_has_no_double_backward_without_the_math_kernel() -> None:
    """The failure this guards against is real on this torch: plain double backward through the encoder fails."""
    model, (x, y) = text_model(), tokens()
    leaves = {k: v.clone().requires_grad_(True) for k, v in weights(model).items()}
    gradient = torch.autograd.grad(loss_fn_of(model, x, y)(leaves), list(leaves.values()), create_graph=True)
    with pytest.raises(RuntimeError, match="derivative for .* is not implemented"):
        torch.autograd.grad(sum(g.sum() for g in gradient), list(leaves.values()))


@pytest.mark.parametrize("hvp", [hessian_vector_product, hessian_vector_product_forward_over_reverse])
def test_hvp_through_transformer_encoder_matches_dense(hvp) -> None:
    model, (x, y) = text_model(), tokens()
    params, loss_fn = weights(model), loss_fn_of(model, x, y)
    flat = P.flatten(params).detach().requires_grad_(True)
    v = gaussian_like(params, seed=4)
    from torch.nn.attention import SDPBackend, sdpa_kernel

    with sdpa_kernel(SDPBackend.MATH):
        gradient = torch.autograd.grad(loss_fn(P.unflatten(flat, params)), flat, create_graph=True)[0]
        expected = torch.autograd.grad(gradient @ P.flatten(v), flat)[0]
    assert float(expected.norm()) > 1e-3
    torch.testing.assert_close(P.flatten(hvp(loss_fn, params, v)), expected, rtol=1e-9, atol=1e-11)


@pytest.mark.parametrize("perturbed", ["embed.weight", "head.weight"])
def test_eval_fast_path_layers_around_a_single_perturbed_layer(perturbed: str) -> None:
    """Only one layer perturbed: the encoder either carries grad (no fast path) or is not differentiated at all."""
    model, (x, y) = text_model(), tokens()
    params, loss_fn = {perturbed: weights(model)[perturbed]}, loss_fn_of(model, x, y)
    value, _ = top_hessian_eigenvalue(loss_fn, params, iterations=3000, tolerance=1e-10)
    assert value == pytest.approx(largest_magnitude(dense_eigenvalues(loss_fn, params)), rel=1e-6)


def test_slice_of_a_text_model_gives_lambda_max_of_the_dense_hessian() -> None:
    model, (x, y) = text_model(), tokens()
    result = lp.slice(
        model, (x, y), scales=(1e-3, 1e-2, 1e-1), device="cpu", dtype="float64", power_iterations=3000
    )
    assert result.layer_names == ["embed.weight", *[n for n in weights(model) if n.startswith("encoder")], "head.weight"]
    assert math.isfinite(result.lambda_max)
    assert math.isfinite(result.curvature)
    expected = largest_magnitude(dense_eigenvalues(loss_fn_of(model, x, y), weights(model)))
    assert result.lambda_max == pytest.approx(expected, rel=1e-4)
    assert model.training is False and next(model.parameters()).dtype == torch.float64


def test_eigenvector_direction_through_transformer_encoder() -> None:
    model, (x, y) = text_model(), tokens()
    result = lp.slice(
        model, (x, y), direction="eigenvector", scaling="global", scales=(1e-3, 1e-2), device="cpu",
        dtype="float64", power_iterations=3000,
    )
    # u is the unit top eigenvector, so uᵀHu is its eigenvalue, the dense Hessian's largest in magnitude
    expected = largest_magnitude(dense_eigenvalues(loss_fn_of(model, x, y), weights(model)))
    assert result.whole.unit_step_norm == pytest.approx(1.0, rel=1e-12)
    assert result.curvature == pytest.approx(expected, rel=1e-4)


def test_slice_of_the_zoo_transformer_gives_lambda_max_of_the_dense_hessian() -> None:
    torch.manual_seed(1)
    model = Transformer(input_shape=[4, 2], num_outputs=CLASSES, d_model=4, depth=1, heads=2, ff_width=4).double()
    g = torch.Generator().manual_seed(2)
    x, y = torch.randn(6, 8, generator=g, dtype=torch.float64), torch.randint(0, CLASSES, (6,), generator=g)
    result = lp.slice(model, (x, y), scales=(1e-3, 1e-2), device="cpu", dtype="float64", power_iterations=3000)
    params = {k: v.detach() for k, v in model.named_parameters() if k in result.layer_names}
    expected = largest_magnitude(dense_eigenvalues(loss_fn_of(model.eval(), x, y), params))
    assert result.lambda_max == pytest.approx(expected, rel=1e-4)
