"""The shared plotting helpers: format parsing and the kind dispatch."""

import pytest

from landscape_probe.errors import ProbeError
from landscape_probe.figures import parse_formats


def test_parse_formats_reads_a_comma_list_in_any_case():
    assert parse_formats("png, SVG,pdf") == ("png", "svg", "pdf")


@pytest.mark.parametrize("text", ["jpeg", "png,gif", "", " , "])
def test_parse_formats_refuses_unknown_or_empty(text):
    with pytest.raises(ProbeError, match="plot format"):
        parse_formats(text)


@pytest.mark.parametrize("command", ["show", "plot"])
def test_show_and_plot_refuse_an_unknown_kind_in_one_sentence(command, tmp_path):
    from typer.testing import CliRunner

    from landscape_probe.cli import app
    from landscape_probe.hdf5 import atomic_h5

    path = tmp_path / "future.h5"
    with atomic_h5(path, kind="sweep3d", attrs={}, overwrite=False):
        pass
    result = CliRunner().invoke(app, [command, str(path)])
    assert result.exit_code == 2
    assert "kind 'sweep3d'" in result.output and "Traceback" not in result.output
