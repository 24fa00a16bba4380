"""Small unit checks of the runtime's input limits and the manifest's own checksum (no bundle needed)."""

from __future__ import annotations

import numpy as np
import pytest

from showo_sdk.errors import InputError
from showo_sdk.runtime import validation as check
from showo_sdk.runtime.bundle import MANIFEST_SHA, manifest_digest, seal_manifest


def test_prompt_count_is_capped():
    assert len(check.prompts(["a"] * check.MAX_PROMPTS)[0]) == check.MAX_PROMPTS
    with pytest.raises(InputError, match=f"at most {check.MAX_PROMPTS}"):
        check.prompts(["a"] * (check.MAX_PROMPTS + 1))


@pytest.mark.parametrize("value", [np.zeros((3, 3)), "x" * 10_000, list(range(10_000))])
def test_messages_describe_values_in_one_short_line(value):
    with pytest.raises(InputError) as info:
        check.int_in("seed", value, 0, 10)
    message = str(info.value)
    assert "\n" not in message and len(message) < 200
    with pytest.raises(InputError) as info:
        check.real_in("temperature", value, 0.0, 1.0)
    assert "\n" not in str(info.value) and len(str(info.value)) < 200


def test_array_is_described_by_dtype_and_shape():
    assert check.describe(np.zeros((3, 3))) == "a float64 array of shape (3, 3)"


def test_seal_covers_everything_but_itself():
    m = seal_manifest({"b": [1, 2.5], "a": {"x": "é"}})
    assert m[MANIFEST_SHA] == manifest_digest(m) == manifest_digest({"a": {"x": "é"}, "b": [1, 2.5]})
    assert manifest_digest({**m, "b": [1, 2.6]}) != m[MANIFEST_SHA]
