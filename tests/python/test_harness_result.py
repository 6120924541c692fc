"""How the harness writes a job's return value as JSON (_harness._dumps)."""

import enum
import json

from stratq._harness import _dumps


def test_integers_past_64_bits_become_strings():
    value = {"a": 2**70, "b": [-2**70, 2**63 - 1, -2**63, 2**63, -2**63 - 1],
             "c": ({"d": 10**30},), 7: True, "f": 1.5e300}
    assert json.loads(_dumps(value)) == {
        "a": str(2**70), "b": [str(-2**70), 2**63 - 1, -2**63, str(2**63), str(-2**63 - 1)],
        "c": [{"d": str(10**30)}], "7": True, "f": 1.5e300}


def test_other_values_are_written_as_json_writes_them():
    value = {"s": "1234567890123456789012345", "f": 0.000123456789012345678, "n": None,
             "l": [1, -2, 2**62]}
    assert _dumps(value) == json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def test_an_int_subclass_past_64_bits_is_written_as_its_number():
    class Big(enum.IntEnum):
        A = 2**80

    assert json.loads(_dumps([Big.A])) == [str(2**80)]
