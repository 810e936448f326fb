"""The params of issue 11 items 3 and 8 (cutover.ready, rollback_grace,
full_certify_within): values reach CutoverOptions, bad ones are one named line
(exit 2 through the CLI's ParameterError), as every other parameter."""

from __future__ import annotations

import pytest

from vmigrate_lib.engine.cutover import CutoverOptions
from vmigrate_lib.errors import ParameterError
from vmigrate_lib.params import validate

BASE = {
    "vm": "alice",
    "source": {"type": "lab", "host": "esx-a"},
    "destination": {"type": "lab", "host": "esx-b"},
    "workspace": "ws",
}


def test_values_reach_the_cutover_options() -> None:
    p = validate({**BASE, "cutover": {"ready": "power-and-probes", "rollback_grace": "2m",
                                      "full_certify_within": 0}})
    opts = CutoverOptions.from_params(p.cutover)
    assert (opts.ready, opts.rollback_grace, opts.full_certify_within) == (
        "power-and-probes", 120.0, 0)
    d = validate(BASE).cutover
    assert (d.ready, d.rollback_grace, d.full_certify_within) == ("auto", 60.0, 3)


@pytest.mark.parametrize(
    ("cutover", "words"),
    [
        ({"ready": "whenever"}, "cutover.ready: must be one of auto, tools, power-and-probes"),
        ({"rollback_grace": "soon"}, "cutover.rollback_grace: not a duration"),
        ({"full_certify_within": -1}, "cutover.full_certify_within: must be from 0 to 1000"),
        ({"full_certify_within": "3"}, "cutover.full_certify_within: must be an integer"),
    ],
)
def test_bad_values_are_named(cutover: dict[str, object], words: str) -> None:
    with pytest.raises(ParameterError) as exc:
        validate({**BASE, "cutover": cutover})
    assert words in str(exc.value) and exc.value.exit_code == 2
