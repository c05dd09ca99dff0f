"""The shared range checks: what passes, what is refused, and the message that names the value."""

import math

import numpy as np
import pytest

from mnemovision.vision.checks import check_int, check_real


def test_check_int_takes_numpy_ints_and_refuses_bools_floats_and_out_of_range():
    assert check_int("n", np.int64(3), 1) == 3 and type(check_int("n", np.uint8(3), 1)) is int
    assert check_int("crf", 51, 0, 51) == 51 and check_int("n", 1, 1) == 1  # both bounds included
    for value, message in ((True, "n must be an int >= 1, got True"), (2.0, "got 2.0"), (0, "got 0"), ("2", "got '2'")):
        with pytest.raises(ValueError, match=message):
            check_int("n", value, 1)
    with pytest.raises(ValueError, match="crf must be an int in 0..51, got 52"):
        check_int("crf", 52, 0, 51)


@pytest.mark.parametrize("kwargs, good, bad, message", [
    (dict(low=0, low_open=True), [1e-9, np.float32(2.0), 3], [0, -1.0, math.inf, math.nan, True], "a positive finite number"),
    (dict(low=0), [0, 0.5], [-1e-9, math.nan], "a finite number >= 0"),
    (dict(low=1), [1, 2.5], [0.5, math.inf], "a finite number >= 1"),
    (dict(low=1, low_open=True), [1.5], [1, 0.5], "a finite number > 1"),
    (dict(low=0, high=1, low_open=True, high_open=True), [0.5], [0.0, 1.0, math.nan], "a number in \\(0, 1\\)"),
    (dict(low=0, high=1), [0.0, 1.0], [1.5], "a number in \\[0, 1\\]"),
    (dict(), [-5.0, 0, 7], [math.inf, -math.inf, math.nan, None, "1"], "a finite number"),
])
def test_check_real_bounds_open_and_closed_and_never_nan(kwargs, good, bad, message):
    for value in good:
        checked = check_real("x", value, **kwargs)
        assert checked == float(value) and type(checked) is float  # numpy and int values come back as floats
    for value in bad:
        with pytest.raises(ValueError, match=f"x must be {message}, got"):
            check_real("x", value, **kwargs)


def test_check_real_refuses_an_int_too_large_for_a_float_by_name():
    with pytest.raises(ValueError, match="fps must be a positive finite number, got 1000000"):  # once OverflowError
        check_real("fps", 10**400, 0, low_open=True)


def test_check_real_clips_a_long_value_in_its_message():
    with pytest.raises(ValueError) as error:
        check_real("x", "a" * 500)
    assert str(error.value) == "x must be a finite number, got '" + "a" * 79  # the value's repr, to 80 characters
