"""Property-based tests of the training settings (issue 21): whatever ``field=value`` words come
in, :func:`parse_overrides` + :func:`make_config` give a valid :class:`TrainConfig` or one
:class:`SettingsError` (a ``ValueError``) on one line, never another exception."""

import dataclasses
import typing

from hypothesis import given, settings
from hypothesis import strategies as st

from irnlib.train import SettingsError, TrainConfig, make_config, parse_overrides
from irnlib.training.fields import RULES

FIELDS = sorted(f.name for f in dataclasses.fields(TrainConfig))
NUMBERS = st.one_of(
    st.integers(min_value=-(10**30), max_value=10**30).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["nan", "inf", "-inf", "1e999", "-0", "5e5", "2.5", "0", "1", "true", "none", "9" * 5000]),
)
VALUES = st.one_of(
    NUMBERS,
    st.lists(NUMBERS, max_size=4).map(",".join),
    st.lists(NUMBERS, max_size=3).map(lambda items: "[" + ",".join(items) + "]"),
    st.text(max_size=12),
    st.sampled_from(["", "..", "../escape", "a/b", "cuda", "haar", "epoch", "off", "\u2028", "x\ny", "é"]),
)
KEYS = st.one_of(st.sampled_from(FIELDS), st.text(max_size=10))
PAIRS = st.one_of(st.tuples(KEYS, VALUES).map("=".join), st.text(max_size=20))


def assert_valid_or_one_line(pairs):
    try:
        config = make_config("smoke", **parse_overrides(pairs))
    except SettingsError as err:
        assert isinstance(err, ValueError)
        message = str(err)
        assert message and len(message.splitlines()) == 1, message
        return
    assert isinstance(config, TrainConfig)
    assert dataclasses.replace(config) == config  # a valid configuration stays valid


@settings(max_examples=200, deadline=None)
@given(st.lists(PAIRS, max_size=4))
def test_any_overrides_give_a_config_or_one_settings_error(pairs):
    assert_valid_or_one_line(pairs)


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(FIELDS), VALUES)
def test_any_value_of_a_known_field_gives_a_config_or_one_settings_error(field, value):
    assert_valid_or_one_line([f"{field}={value}"])


def test_every_field_has_a_rule_with_its_range():
    assert sorted(RULES) == FIELDS
    assert list(RULES) == [f.name for f in dataclasses.fields(TrainConfig)]  # checked in field order
    assert set(typing.get_type_hints(TrainConfig)) == set(FIELDS)
