"""probe info's spectral norm: exact for small matrices, Lanczos for large ones, both against a float64 SVD."""

from __future__ import annotations

import pytest
import torch

from landscape_probe.checkpoints.summary import EXACT_UP_TO, describe_tensors, largest_singular_value


def _with_singular_values(rows: int, cols: int, values: torch.Tensor) -> torch.Tensor:
    generator = torch.Generator().manual_seed(3)
    u, _ = torch.linalg.qr(torch.randn(rows, len(values), generator=generator, dtype=torch.float64))
    v, _ = torch.linalg.qr(torch.randn(cols, len(values), generator=generator, dtype=torch.float64))
    return (u * values) @ v.T


@pytest.mark.parametrize(("rows", "cols"), [(700, 600), (600, 900)])
def test_large_matrices_get_sigma_max_by_lanczos_to_a_millionth(rows: int, cols: int) -> None:
    values = torch.linspace(3.0, 0.01, min(rows, cols), dtype=torch.float64)
    values[1] = 2.999  # a gap of 3e-4: hard for power iteration
    matrix = _with_singular_values(rows, cols, values).float()
    assert min(rows, cols) > EXACT_UP_TO
    expected = float(torch.linalg.matrix_norm(matrix.double(), ord=2))
    assert largest_singular_value(matrix) == pytest.approx(expected, rel=1e-6)


def test_small_matrices_and_conv_kernels_are_exact() -> None:
    matrix = _with_singular_values(40, 30, torch.tensor([5.0, 1.0, 0.5], dtype=torch.float64)).float()
    assert largest_singular_value(matrix) == pytest.approx(float(torch.linalg.matrix_norm(matrix.double(), ord=2)),
                                                           rel=1e-12)
    kernel = torch.randn(8, 3, 3, 3)
    row = describe_tensors([("conv", kernel)])[0]
    assert row["spectral_norm"] == pytest.approx(float(torch.linalg.matrix_norm(kernel.reshape(8, -1).double(), ord=2)))


def test_finiteness_from_the_float64_norm_of_narrow_tensors_and_by_entries_of_float64_ones() -> None:
    """A float32 sum of squares cannot overflow float64, so its norm says whether every entry is finite."""
    huge = torch.full((3, 4), 3e38)  # near float32's largest, finite
    rows = describe_tensors([("huge", huge), ("nan", torch.tensor([[1.0, float("nan")]])),
                             ("inf16", torch.tensor([[1.0, float("inf")]], dtype=torch.float16)),
                             ("big64", torch.full((2, 2), 1e300, dtype=torch.float64))])
    by_name = {row["name"]: row for row in rows}
    assert by_name["huge"]["finite"] and by_name["huge"]["frobenius_norm"] == pytest.approx(3e38 * 12**0.5, rel=1e-7)
    assert by_name["huge"]["spectral_norm"] == pytest.approx(3e38 * 12**0.5, rel=1e-6)  # rank one: σ = ||W||_F
    assert not by_name["nan"]["finite"] and by_name["nan"]["spectral_norm"] is None
    assert not by_name["inf16"]["finite"]
    assert by_name["big64"]["finite"]  # entry by entry: its norm overflows, its entries do not


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
def test_all_finite_agrees_with_isfinite_entry_by_entry(dtype: torch.dtype) -> None:
    from landscape_probe.checkpoints.summary import all_finite

    generator = torch.Generator().manual_seed(0)
    for bad in (None, float("nan"), float("inf"), -float("inf")):
        tensor = torch.randn(5, 7, generator=generator).to(dtype)
        if bad is not None:
            tensor[3, 2] = bad
        assert all_finite(tensor) == bool(torch.isfinite(tensor).all())
    assert all_finite(torch.full((2,), torch.finfo(dtype).max, dtype=dtype)) and all_finite(torch.empty(0, dtype=dtype))
