"""``bounded_int``: the one rule for numbers in request arguments (API paging, the console's pages and years)."""

import pytest

from app.platform.errors import RequestError
from app.platform.validation import bounded_int


@pytest.mark.parametrize(("raw", "value"), [(None, 7), ("0", 0), ("5", 5), ("007", 7), ("100", 100)])
def test_digits_within_bounds(raw, value):
    args = {} if raw is None else {"page": raw}
    assert bounded_int(args, "page", 7, 100) == value


@pytest.mark.parametrize(
    "raw",
    ["", "²", "\u0663", "\uff11", "+1", "-1", " 1", "1 ", "1_0", "1e3", "0x10", "1.0", "101", "9" * 19, "1\n"],
)
def test_anything_else_is_a_request_error_naming_the_argument(raw):
    with pytest.raises(RequestError, match="page"):
        bounded_int({"page": raw}, "page", 0, 100)


def test_the_lower_bound():
    with pytest.raises(RequestError, match="between 1 and 200"):
        bounded_int({"page_size": "0"}, "page_size", 50, 200, low=1)
