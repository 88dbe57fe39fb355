"""The shared plotting helpers: format parsing and the kind dispatch."""

import pytest

from landscape_probe.errors import ProbeError
from landscape_probe.plotting import parse_formats


def test_parse_formats_reads_a_comma_list_in_any_case():
    assert parse_formats("png, SVG,pdf") == ("png", "svg", "pdf")


@pytest.mark.parametrize("text", ["jpeg", "png,gif", "", " , "])
def test_parse_formats_refuses_unknown_or_empty(text):
    with pytest.raises(ProbeError, match="plot format"):
        parse_formats(text)
