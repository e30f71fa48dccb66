"""`og --help`, `og --version`, `og info` and the one-line error of the console entry point."""

import subprocess
import sys

from typer.testing import CliRunner

from cli.main import app

runner = CliRunner()


def test_help_lists_commands():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    assert "info" in result.output


def test_version():
    from og import __version__

    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.strip() == f"og {__version__}"


def test_info_lists_registries_and_presets():
    result = runner.invoke(app, ["info"], terminal_width=200)
    assert result.exit_code == 0, result.output
    for word in ("encoders", "segmenters", "fusions", "presets", "og-llava", "tiny-og"):
        assert word in result.output


def test_errors_are_one_line_without_traceback():
    code = "import sys; sys.argv=['og','info','x']; from cli.main import app, main; " \
           "app.command('boom')(lambda: (_ for _ in ()).throw(ValueError('bad value 7; use 3')));" \
           "sys.argv=['og','boom']; main()"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 1
    assert proc.stderr.strip() == "error: ValueError: bad value 7; use 3"
    assert "Traceback" not in proc.stderr
