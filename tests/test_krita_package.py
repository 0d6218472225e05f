"""`lama-backend package-plugin krita`: the zip Krita's plugin importer takes, with the client inside."""
import configparser
import os
import subprocess
import sys
import zipfile
from pathlib import Path

from lama_backend.cli import main
from lama_backend.commands.package_plugin import TARGETS, build_bundle

ROOT = Path(__file__).resolve().parents[1]


def test_krita_zip_layout(tmp_path, capsys):
    assert main(["package-plugin", "krita", "-o", str(tmp_path / "plugin.zip")]) == 0
    out = capsys.readouterr().out
    assert "Import Python Plugin from File" in out
    with zipfile.ZipFile(tmp_path / "plugin.zip") as archive:
        names = archive.namelist()
        desktop = configparser.ConfigParser()
        desktop.read_string(archive.read("lama_inpaint.desktop").decode())
    assert desktop["Desktop Entry"]["X-KDE-Library"] == "lama_inpaint"
    assert "lama_inpaint.action" in names and "lama_inpaint/__init__.py" in names
    client_files = sorted(p.name for p in (ROOT / "backend" / "client").glob("*.py"))
    assert sorted(n.rsplit("/", 1)[1] for n in names
                  if n.startswith("lama_inpaint/lama_client/") and not n.endswith("/")) == client_files
    assert "lama_inpaint/lama_client/region.py" in names
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    assert "lama_inpaint/" in names and "lama_inpaint/lama_client/" in names  # Krita's importer needs these


def test_zip_is_reproducible_and_directory_output_uses_default_name(tmp_path):
    first = build_bundle("krita", tmp_path)
    assert first.name == TARGETS["krita"].default_name
    second = build_bundle("krita", tmp_path / "again.zip")
    assert first.read_bytes() == second.read_bytes()


def test_bad_output_name_is_a_clear_error(tmp_path, capsys):
    assert main(["package-plugin", "krita", "-o", str(tmp_path / "plugin.tar")]) == 2
    assert "must end in .zip" in capsys.readouterr().err


def test_bundled_client_imports_without_the_project(tmp_path):
    """The copy inside the zip must work on a bare Python: relative imports only, stdlib only."""
    with zipfile.ZipFile(build_bundle("krita", tmp_path / "p.zip")) as archive:
        archive.extractall(tmp_path / "unpacked")
    code = ("import sys; sys.path[:] = [p for p in sys.path if 'site-packages' not in p]; "
            "sys.path.insert(0, %r); import lama_client, lama_client.region as r; "
            "assert 'lama_backend' not in sys.modules; "
            "print(r.expand_rect(r.Rect(5, 5, 2, 2), 10, r.Rect(0, 0, 8, 30)))"
            % str(tmp_path / "unpacked" / "lama_inpaint"))
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH",)}
    out = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.strip() == "Rect(x=0, y=0, width=8, height=17)"
