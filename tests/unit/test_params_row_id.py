import pytest

from alertd.api.params import MAX_ROW_ID, row_id


@pytest.mark.parametrize("raw", ["", "²", "٣", "１", "-1", "+1", " 1", "1.0", "0x1", str(MAX_ROW_ID + 1), "9" * 19,
                                 "9" * 4000, "1\x00"])
def test_what_is_not_a_row_id_is_none(raw):
    # the ids of paths, queries and forms: "²" passed str.isdigit and then made int() raise, a 500
    assert row_id(raw) is None


@pytest.mark.parametrize(("raw", "value"), [("0", 0), ("17", 17), (str(MAX_ROW_ID), MAX_ROW_ID)])
def test_a_row_id_is_its_value(raw, value):
    assert row_id(raw) == value
