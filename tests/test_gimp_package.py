"""`lama-backend package-plugin gimp`: the folder GIMP 3 loads, with the client inside."""
from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

from lama_backend.commands.package_plugin import build_bundle

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "gimp"))

import fake_gimp  # noqa: E402


def test_zip_layout_and_executable_entry(tmp_path):
    archive = build_bundle("gimp", tmp_path)
    assert archive.name.startswith("lama_inpaint-gimp-") and archive.suffix == ".zip"
    with zipfile.ZipFile(archive) as zipped:
        modes = {info.filename: (info.external_attr >> 16) & 0o777 for info in zipped.infolist()}
    plugin_files = {"lama_inpaint/" + p.name for p in (REPO / "gimp_plugin" / "lama_inpaint").glob("*.py")}
    client_files = {"lama_inpaint/lama_client/" + p.name for p in (REPO / "backend" / "client").glob("*.py")}
    files = {name for name in modes if not name.endswith("/")}
    assert files == plugin_files | client_files  # GIMP wants plug-ins/<name>/<name>.py; nothing else
    assert modes["lama_inpaint/lama_inpaint.py"] == 0o755  # GIMP ignores a non-executable plug-in
    assert all(mode == 0o644 for name, mode in modes.items() if name in files - {"lama_inpaint/lama_inpaint.py"})


def test_unpacked_plugin_uses_its_bundled_client(tmp_path):
    archive = build_bundle("gimp", tmp_path / "zip.zip")
    with zipfile.ZipFile(archive) as zipped:
        zipped.extractall(tmp_path / "plug-ins")
    plugin_dir = tmp_path / "plug-ins" / "lama_inpaint"
    recorder = fake_gimp.Recorder()
    try:
        modules = fake_gimp.install(recorder, str(plugin_dir))
        client = sys.modules["lama_gimp_client"]
        assert Path(client.region.__file__).resolve() == (plugin_dir / "lama_client" / "region.py").resolve()
        assert Path(modules["lama_gimp_job"].LamaClient.__module__.replace(".", "/")).parts[0] == "lama_client"
    finally:
        fake_gimp.uninstall(str(plugin_dir))
        for name in [name for name in sys.modules if name == "lama_client" or name.startswith("lama_client.")]:
            del sys.modules[name]


def test_cli_prints_where_to_unpack(tmp_path):
    done = subprocess.run([sys.executable, "-m", "lama_backend.cli", "package-plugin", "gimp", "-o", str(tmp_path)],
                          capture_output=True, text=True, check=True)
    assert "plug-ins" in done.stdout and "Filters > Enhance > Inpaint Selection (LaMa)" in done.stdout
