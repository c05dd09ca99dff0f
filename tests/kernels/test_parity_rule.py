"""The kernel tests' tolerance rule (``mnemovision.kernels._testing``, STYLE.md): what it lets
through and what it refuses, on values exactly representable in each dtype."""

import math

import pytest
import torch

from mnemovision.kernels._testing import FACTOR, FLOORS, assert_kernel_close, max_abs_error


def test_errors_are_taken_in_float64_with_nan_infinite_and_equal_infinities_none():
    ref = torch.tensor([1.0, -2.0, 3.0], dtype=torch.float64)
    assert max_abs_error(torch.tensor([1.5, -2.0, 2.0]), ref) == 1.0
    assert max_abs_error(torch.tensor([1.0, float("nan"), 3.0]), ref) == math.inf
    assert max_abs_error(torch.tensor([1.0, -2.0, float("inf")]), ref) == math.inf
    masked = torch.tensor([float("-inf"), 0.5], dtype=torch.float64)
    assert max_abs_error(torch.tensor([float("-inf"), 0.25]), masked) == 0.25
    assert max_abs_error(torch.tensor([float("inf"), 0.5]), masked) == math.inf
    assert max_abs_error(torch.empty(0), torch.empty(0, dtype=torch.float64)) == 0.0
    # the reference is not rounded to the kernel's dtype: float32 1.0 is 1e-9 from 1 + 1e-9
    assert max_abs_error(torch.tensor([1.0]), torch.tensor([1.0 + 1e-9], dtype=torch.float64)) == pytest.approx(1e-9, rel=1e-6)


def test_allowed_error_is_factor_times_the_same_precision_error_plus_a_scaled_floor():
    """Reference [0, 4] (largest magnitude 4 scales the floor), same-precision error 2^-10: allowed
    2 x 2^-10 + 4 x 2e-5. An error of 2^-9 passes, 2^-9 + 2^-12 fails, naming the tensor."""
    assert FACTOR == 2.0 and FLOORS[torch.float32] == 2e-5
    ref = torch.tensor([0.0, 4.0], dtype=torch.float64)
    same = torch.tensor([0.0, 4.0 + 2**-10])
    assert_kernel_close(torch.tensor([0.0, 4.0 + 2**-9]), same, ref, "render")
    assert_kernel_close(torch.tensor([0.0, 4.0 - 2**-9]), same, ref, "render")
    with pytest.raises(AssertionError, match="render: error 2.197e-03 vs float64 exceeds 2.0 x reference error 9.766e-04"):
        assert_kernel_close(torch.tensor([0.0, 4.0 + 2**-9 + 2**-12]), same, ref, "render")
    # a wider factor lets it through; with an exact same-precision path only the floor is left
    assert_kernel_close(torch.tensor([0.0, 4.0 + 2**-9 + 2**-12]), same, ref, "render", factor=2.5)
    exact = ref.float()
    assert_kernel_close(torch.tensor([0.0, 4.0 + 2**-14]), exact, ref, "alpha")  # 6.1e-5 <= 8e-5
    with pytest.raises(AssertionError, match="alpha"):
        assert_kernel_close(torch.tensor([0.0, 4.0 + 2**-13]), exact, ref, "alpha")  # 1.2e-4 > 8e-5


def test_the_floor_is_the_dtypes_and_never_scaled_below_one():
    """References of magnitude at most 1 keep the plain floor: float16's 2e-3, bfloat16's 1.6e-2."""
    ref = torch.tensor([0.5, -0.25], dtype=torch.float64)
    same16 = ref.half()
    assert_kernel_close(torch.tensor([0.5 + 2**-10, -0.25], dtype=torch.float16), same16, ref, "out")  # 9.8e-4
    with pytest.raises(AssertionError, match="out"):
        assert_kernel_close(torch.tensor([0.5 + 2**-8, -0.25], dtype=torch.float16), same16, ref, "out")  # 3.9e-3
    assert_kernel_close(torch.tensor([0.5 + 2**-7, -0.25], dtype=torch.bfloat16), ref.bfloat16(), ref, "out")  # 7.8e-3
    with pytest.raises(AssertionError, match="out"):
        assert_kernel_close(torch.tensor([0.5 + 2**-5, -0.25], dtype=torch.bfloat16), ref.bfloat16(), ref, "out")  # 3.1e-2
    small = torch.tensor([1e-3], dtype=torch.float64)
    assert_kernel_close(torch.tensor([1e-3 + 1.5e-5]), small.float(), small, "dq")  # the floor stays 2e-5
    with pytest.raises(AssertionError, match="dq"):
        assert_kernel_close(torch.tensor([1e-3 + 4e-5]), small.float(), small, "dq")


def test_nan_shapes_and_a_nan_same_precision_path_are_refused():
    ref = torch.tensor([1.0, 2.0], dtype=torch.float64)
    with pytest.raises(AssertionError, match="dmeans"):
        assert_kernel_close(torch.tensor([1.0, float("nan")]), ref.float(), ref, "dmeans")
    with pytest.raises(AssertionError, match=r"dmeans: shape \(1, 2\) != reference \(2,\)"):
        assert_kernel_close(torch.tensor([[1.0, 2.0]]), ref.float(), ref, "dmeans")
    # NaN in the same-precision path would allow any error: refused whatever the kernel gave
    with pytest.raises(AssertionError, match="dmeans: the same-precision PyTorch path is NaN"):
        assert_kernel_close(ref.float(), torch.tensor([1.0, float("nan")]), ref, "dmeans")
    # a fully masked row: -inf in all three compares equal, and does not widen the floor
    lse = torch.tensor([float("-inf"), 0.5], dtype=torch.float64)
    assert_kernel_close(lse.float(), lse.float(), lse, "lse")
    with pytest.raises(AssertionError, match="lse"):
        assert_kernel_close(torch.tensor([float("-inf"), 0.5 + 2**-10]), lse.float(), lse, "lse")


def test_all_infinite_and_empty_references_keep_the_plain_floor():
    """Nothing finite to scale the floor by (every query of a batch fully masked, an empty output):
    the floor stays the dtype's, and matching outputs pass."""
    lse = torch.full((3,), float("-inf"), dtype=torch.float64)
    assert_kernel_close(lse.float(), lse.float(), lse, "lse")
    with pytest.raises(AssertionError, match="lse"):
        assert_kernel_close(torch.tensor([float("-inf"), float("-inf"), 0.0]), lse.float(), lse, "lse")
    empty = torch.empty(0, 4, dtype=torch.float64)
    assert_kernel_close(empty.float(), empty.float(), empty, "out")
