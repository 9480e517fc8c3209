"""Notebook parameters are checked once where they enter: a value the notebook cannot use is one
line naming the parameter, its value and what is allowed (issue: ``-p scales 3``, ``-p draws abc``,
``-p scales '[3]'``)."""

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from irnlib.app.notebook import ParameterError, as_list, choice_parameter, float_parameter, int_parameter
from irnlib.model.network import SCALES


def test_a_bare_value_is_a_list_of_one_and_json_text_is_read():
    assert as_list("scales", 3) == [3]
    assert as_list("scales", "[2, 4]") == [2, 4]
    assert as_list("datasets", "Set5") == ["Set5"]
    assert as_list("datasets", None) is None
    with pytest.raises(ParameterError, match=r"notebook parameter scales='\[2,': not readable as JSON"):
        as_list("scales", "[2,")
    with pytest.raises(ParameterError, match="a list is expected"):
        as_list("scales", '{"2": 1}')


def test_a_scale_irn_does_not_have_is_refused_with_the_ones_it_has():
    assert [choice_parameter("scales", s, SCALES) for s in as_list("scales", "[2, 4]")] == [2, 4]
    with pytest.raises(ParameterError) as err:
        choice_parameter("scales", 3, SCALES)
    assert str(err.value) == "notebook parameter scales=3: use one of 2, 4, 8 (papermill -p scales ...)"


def test_integers_and_numbers_are_checked_against_their_range():
    assert int_parameter("draws", "5", 1, 100) == 5 and int_parameter("draws", 2.0, 1, 100) == 2
    with pytest.raises(ParameterError, match=r"draws='abc': not an integer; use 1\.\.100"):
        int_parameter("draws", "abc", 1, 100)
    with pytest.raises(ParameterError, match="out of range"):
        int_parameter("draws", 0, 1, 100)
    with pytest.raises(ParameterError, match="not an integer"):
        int_parameter("draws", True, 1, 100)
    assert float_parameter("temperatures", "0.5", 0, 10) == 0.5
    for bad in ("nan", math.inf, -1, "x", None):
        with pytest.raises(ParameterError):
            float_parameter("temperatures", bad, 0, 10)


values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.lists(st.integers(), max_size=3).map(str),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)


@settings(max_examples=300, deadline=None)
@given(values)
def test_any_value_is_accepted_in_range_or_refused_with_one_line(value):
    for check in (
        lambda v: int_parameter("n", v, 1, 100),
        lambda v: float_parameter("t", v, 0, 10),
        lambda v: choice_parameter("s", v, SCALES),
        lambda v: as_list("l", v),
    ):
        try:
            result = check(value)
        except ParameterError as err:
            assert "\n" not in str(err) and str(err).startswith("notebook parameter ")
            continue
        if isinstance(result, int) and not isinstance(result, bool) and result not in SCALES:
            assert 1 <= result <= 100
        if isinstance(result, float):
            assert 0 <= result <= 10
