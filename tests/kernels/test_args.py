"""The scalar checks the kernels' public ops share (``near``, ``far``, ``scale``, ``temperature``,
``top_k``, sizes): what passes as a number and what is refused with the argument's name."""

import numpy as np
import pytest
import torch

from mnemovision.kernels._args import finite_float, is_int


@pytest.mark.parametrize("x", [3, -2, np.int64(7), np.uint8(1), torch.tensor(4).item()])
def test_integers_of_any_kind_are_ints(x):
    assert is_int(x)


@pytest.mark.parametrize("x", [True, False, np.bool_(True), 2.0, np.float64(2.0), "2", None, torch.tensor(2)])
def test_bools_floats_strings_and_tensors_are_not_ints(x):
    assert not is_int(x)


@pytest.mark.parametrize("x, value", [(0.05, 0.05), (3, 3.0), (np.float32(0.5), 0.5), (np.int64(-2), -2.0), (torch.tensor(0.25), 0.25), (torch.tensor([1.5]), 1.5)])
def test_finite_reals_and_one_element_tensors_become_floats(x, value):
    out = finite_float("temperature", x)
    assert type(out) is float and out == value


@pytest.mark.parametrize("x", [
    True, "0.05", b"1", None, float("nan"), float("inf"), -np.inf, torch.tensor([1.0, 2.0]), torch.tensor(float("nan")), [0.5], 1 + 2j,
    torch.tensor(1.0, device="meta"), torch.tensor(1 + 2j),  # torch raises RuntimeError for these two
])
def test_everything_else_is_refused_naming_the_argument(x):
    with pytest.raises(ValueError, match=r"^temperature must be a finite number, got "):
        finite_float("temperature", x)
