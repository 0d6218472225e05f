"""Fast tests of the GIMP root builder's pure parts (no debootstrap, no mounts)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "gimp"))

import gimp_root  # noqa: E402


def test_mirror_from_deb822_and_one_line_sources(tmp_path, monkeypatch):
    monkeypatch.delenv("LAMA_DEBIAN_MIRROR", raising=False)
    deb822 = tmp_path / "debian.sources"
    deb822.write_text("Types: deb\nURIs: http://mirror.example/debian-security\nSuites: bookworm-security\n\n"
                      "Types: deb\nURIs: http://mirror.example/debian/\nSuites: bookworm\n")
    third_party = tmp_path / "other.list"
    third_party.write_text("deb [arch=amd64 signed-by=/k.gpg] https://packages.example/apt stable main\n")
    one_line = tmp_path / "sources.list"
    one_line.write_text("# comment\ndeb [trusted=yes] http://local.example/debian bookworm main\n")
    assert gimp_root.apt_mirror([third_party, deb822]) == "http://mirror.example/debian"
    assert gimp_root.apt_mirror([third_party, one_line]) == "http://local.example/debian"
    with pytest.raises(gimp_root.RootError, match="LAMA_DEBIAN_MIRROR"):
        gimp_root.apt_mirror([third_party, tmp_path / "missing.list"])
    monkeypatch.setenv("LAMA_DEBIAN_MIRROR", "http://override.example/debian")
    assert gimp_root.apt_mirror([deb822]) == "http://override.example/debian"


def test_a_root_is_ready_only_with_a_matching_stamp_and_gimp(tmp_path):
    root = tmp_path / "root"
    assert not gimp_root.is_ready(root)
    (root / "usr/bin").mkdir(parents=True)
    (root / "usr/bin/gimp-console-3.0").write_text("")
    stamp = root / gimp_root.STAMP
    stamp.parent.mkdir(parents=True)
    stamp.write_text(json.dumps(gimp_root._expected_stamp()))
    assert gimp_root.is_ready(root)
    outdated = dict(gimp_root._expected_stamp(), packages=["gimp"])  # an older package list: rebuild
    stamp.write_text(json.dumps(outdated))
    assert not gimp_root.is_ready(root)
    stamp.write_text("{broken")
    assert not gimp_root.is_ready(root)


def test_mounts_under_lists_nothing_for_an_unmounted_folder(tmp_path):
    assert gimp_root.mounts_under(tmp_path) == []
    assert "/proc" in gimp_root.mounts_under(Path("/proc")) or not Path("/proc/self/mountinfo").exists()


def test_commands_in_the_root_get_a_clean_environment():
    env = gimp_root.chroot_env({"GIMP3_DIRECTORY": "/tmp/p"})
    assert env["PATH"] == "/usr/sbin:/usr/bin:/sbin:/bin" and env["GIMP3_DIRECTORY"] == "/tmp/p"
    assert not {"VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "DISPLAY"} & set(env)
