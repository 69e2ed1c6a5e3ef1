"""Canonical JSON (RFC 8785) and digests."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from registry.canonical import canonical_bytes, code_id, digest, record_json
from registry.models import DataItem, DataType, Department

MAX_SAFE_INTEGER = 2**53 - 1


def test_rfc8785_section_3_2_2_example() -> None:
    # RFC 8785 §3.2.2: whitespace removed, numbers in ES6 form, strings minimally escaped.
    value = json.loads(
        '{"numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],'
        ' "string": "\\u20ac$\\u000F\\u000aA\'\\u0042\\u0022\\u005c\\\\\\"\\/",'
        ' "literals": [null, true, false]}'
    )
    expected = (
        '{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],'
        '"string":"€$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}'
    )
    assert canonical_bytes(value) == expected.encode("utf-8")


def test_keys_are_sorted_by_utf16_code_units() -> None:
    # RFC 8785 §3.2.3: U+1F600 (UTF-16 D83D DE00) sorts before U+FB33, unlike code-point order.
    value = {
        "\u20ac": "Euro",
        "\r": "CR",
        "\ufb33": "Hebrew",
        "1": "One",
        "\U0001f600": "Emoji",
        "\u0080": "C1",
        "ö": "o",
    }
    out = canonical_bytes(value).decode("utf-8")
    keys = list(json.loads(out))
    assert keys == ["\r", "1", "\u0080", "ö", "\u20ac", "\U0001f600", "\ufb33"]
    assert sorted(value) != keys  # Python's code-point order differs


def test_number_formatting() -> None:
    assert canonical_bytes({"a": 1.0}) == b'{"a":1}'
    assert canonical_bytes({"a": 1e21}) == b'{"a":1e+21}'
    assert canonical_bytes({"a": 1e20}) == b'{"a":100000000000000000000}'
    assert canonical_bytes({"a": -0.0}) == b'{"a":0}'
    assert canonical_bytes({"a": 1e-7}) == b'{"a":1e-7}'
    assert canonical_bytes({"a": 0.000001}) == b'{"a":0.000001}'
    assert canonical_bytes({"a": MAX_SAFE_INTEGER}) == b'{"a":9007199254740991}'


def test_nested_objects_sorted_and_arrays_kept_in_order() -> None:
    assert canonical_bytes({"b": [3, 1, {"z": 1, "a": 2}], "a": {}}) == b'{"a":{},"b":[3,1,{"a":2,"z":1}]}'


def test_chinese_is_utf8_not_escaped() -> None:
    raw = canonical_bytes({"name": "人口基础信息库", "note": "“双预防”平台"})
    assert raw == '{"name":"人口基础信息库","note":"“双预防”平台"}'.encode()
    assert b"\\u" not in raw


def test_record_json_drops_none_and_uses_values() -> None:
    item = DataItem(name="姓名", data_type=DataType.STRING)
    assert record_json(item) == {"name": "姓名", "data_type": "string"}
    assert canonical_bytes(item) == '{"data_type":"string","name":"姓名"}'.encode()


def test_digest_is_keccak_of_canonical_bytes_and_stable() -> None:
    a = Department(code="D1", name="民政局", jurisdiction="110102")
    b = Department(jurisdiction="110102", name="民政局", code="D1")
    assert digest(a) == digest(b) == digest(canonical_bytes(a)) == digest(record_json(a))
    assert len(digest(a)) == 32
    assert digest(a) != digest(Department(code="D1", name="民政局 办", jurisdiction="110102"))
    # keccak-256 (not SHA3-256) of the empty object "{}".
    assert digest({}).hex() == "b48d38f93eaa084033fc5970bf96e559c33c4cdc07d889ab00b4d63f9590739d"


def test_code_id_is_keccak_of_utf8_code() -> None:
    # keccak256("") is the well-known c5d2...a470.
    assert code_id("").hex() == "c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470"
    assert code_id("110102/大栅栏街道") == digest("110102/大栅栏街道".encode())


json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-MAX_SAFE_INTEGER, max_value=MAX_SAFE_INTEGER)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(), children, max_size=5),
    max_leaves=25,
)


def _parse_int(text: str) -> int | float:
    # I-JSON numbers are doubles: RFC 8785 writes an integral double such as 1e20 without exponent
    # ("100000000000000000000"), which Python would parse as an int beyond 2**53 — read it as a float.
    number = int(text)
    return number if abs(number) <= MAX_SAFE_INTEGER else float(text)


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_canonical_bytes_is_idempotent(value: Any) -> None:
    first = canonical_bytes(value)
    reparsed = json.loads(first.decode("utf-8"), parse_int=_parse_int)
    assert canonical_bytes(reparsed) == first
    assert digest(reparsed) == digest(first)
