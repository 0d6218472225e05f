"""Running real Krita from the test suite: profiles, the packaged plugin, kritarunner, Xvfb.

Venv side only (the code that runs inside Krita is `headless_checks.py` and `gui_driver/`).
Krita gets a clean environment: `/usr/bin:/bin` first on PATH and no PYTHONPATH/PYTHONHOME/
VIRTUAL_ENV from the venv, else its embedded Python picks the wrong interpreter and no Python
plugin loads (see /work/shared/notes/real-editors.md).
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
KRITA_TESTS = REPO_ROOT / "tests" / "krita_tier"
IMPORTER_DIR = Path("/usr/share/krita/pykrita/plugin_importer")
APT_PACKAGES = ("krita python3-pyqt5 python3-sip xvfb xauth python3-numpy python3-zmq python3-msgpack")


def require(*programs: str) -> None:
    """Fail in CI (CI=true) and skip elsewhere when a program of the real-Krita tier is missing."""
    missing = [p for p in programs if shutil.which(p) is None]
    if not IMPORTER_DIR.is_dir():
        missing.append(str(IMPORTER_DIR))
    if missing:
        message = "real-Krita tier needs %s (apt-get install -y --no-install-recommends %s)" % (
            ", ".join(missing), APT_PACKAGES)
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def profile_env(profile: Path) -> dict[str, str]:
    """A private Krita profile: HOME and the XDG folders inside `profile`."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "DISPLAY", "WAYLAND_DISPLAY")}
    env.update(PATH="/usr/bin:/bin", HOME=str(profile), XDG_DATA_HOME=str(profile / "data"),
               XDG_CONFIG_HOME=str(profile / "config"), XDG_CACHE_HOME=str(profile / "cache"), LANG="C.UTF-8",
               LC_ALL="C.UTF-8")
    return env


def install_plugin(zip_path: Path, resources: Path) -> list[str]:
    """Install the zip the way "Import Python Plugin from File" does: with Krita's own importer."""
    resources.mkdir(parents=True, exist_ok=True)
    code = ("import builtins, json, sys; builtins.i18n = str; sys.path.insert(0, %r); "
            "from plugin_importer import PluginImporter; "
            "print(json.dumps([p['name'] for p in PluginImporter(%r, %r, lambda p: True).import_all()]))"
            % (str(IMPORTER_DIR), str(zip_path), str(resources)))
    out = subprocess.run(["/usr/bin/python3", "-c", code], capture_output=True, text=True, check=True,
                         env={"PATH": "/usr/bin:/bin"})
    return json.loads(out.stdout)


def enable_plugins(profile: Path, names: list[str], extra: str = "") -> None:
    config = profile / "config"
    config.mkdir(parents=True, exist_ok=True)
    lines = ["[python]"] + ["enable_%s=true" % name for name in names]
    (config / "kritarc").write_text("\n".join(lines) + "\n" + extra)


def run_kritarunner(profile: Path, module: str, function: str, args: list[str], python_path: list[Path],
                    timeout: float, env_extra: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    env = profile_env(profile)
    env.update(QT_QPA_PLATFORM="offscreen", OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join(str(p) for p in python_path))
    env.update(env_extra or {})
    return subprocess.run(["kritarunner", "-s", module, "-f", function, "--"] + args, env=env, cwd=str(profile),
                          capture_output=True, text=True, timeout=timeout)


def run_gui_krita(profile: Path, env_extra: dict[str, str], timeout: float) -> subprocess.CompletedProcess:
    """Full Krita under Xvfb; the driver plugin quits it. Killed (process group) after `timeout`."""
    env = profile_env(profile)
    env.pop("QT_QPA_PLATFORM", None)  # the fast tests set "offscreen" in this process; the GUI needs Xvfb
    env.update(env_extra)
    process = subprocess.Popen(["xvfb-run", "-a", "-s", "-screen 0 1600x1000x24", "krita", "--nosplash"], env=env,
                               cwd=str(profile), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               start_new_session=True)
    try:
        out, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        out, _ = process.communicate()
        out += "\n[harness] killed after %.0f s" % timeout
    return subprocess.CompletedProcess(process.args, process.returncode, out, "")


def shutdown_backend(address: str) -> None:
    """Stop a backend the test (or the plugin's autostart) started; quiet when none runs."""
    from lama_backend.client import BackendUnavailable, LamaClient

    client = LamaClient(address, timeout=2.0)
    try:
        client.shutdown()
    except BackendUnavailable:
        return
    finally:
        client.close()
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        probe = LamaClient(address, timeout=0.5)
        try:
            probe.hello()
        except BackendUnavailable:
            return
        finally:
            probe.close()
        time.sleep(0.2)


def backend_command(address: str, weights: Path) -> list[str]:
    """The venv's `lama-backend serve` with the tiny test weights."""
    return [str(Path(sys.executable).with_name("lama-backend")), "serve", "--bind", address, "--weights", str(weights),
            "--device", "cpu"]


def install_driver(profile: Path) -> None:
    """Put the GUI test driver plugin (with the shared scene module) into the profile."""
    pykrita = profile / "data" / "krita" / "pykrita"
    shutil.copyfile(KRITA_TESTS / "gui_driver" / "lama_gui_test.desktop", pykrita / "lama_gui_test.desktop")
    shutil.copytree(KRITA_TESTS / "gui_driver" / "lama_gui_test", pykrita / "lama_gui_test",
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copyfile(KRITA_TESTS / "scene.py", pykrita / "lama_gui_test" / "scene.py")
