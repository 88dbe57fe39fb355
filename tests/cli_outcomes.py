"""What a refused command looks like, shared by the tests that drive the CLI with hostile input."""

from __future__ import annotations

from typer.testing import Result


def one_sentence_exit_2(result: Result) -> str:
    """Exit 2, and on stderr one sentence starting ``Error:`` (rich may wrap it over lines), no traceback."""
    text = " ".join(result.stderr.split())
    assert result.exit_code == 2, result.output
    assert text.startswith("Error:") and " Error:" not in text and text.endswith("."), text
    assert "Traceback" not in result.output
    return text
