#!/usr/bin/env python3
"""Build, cache and use a Debian 13 (trixie) root that holds the real GIMP 3.0.

Debian 12 (the CI host) ships only GIMP 2.10 without Python 3 plug-ins, so the GIMP tier runs
`gimp-console-3.0` inside a debootstrapped trixie root with `chroot`. The root is cached outside
the repository (default /var/tmp/lama-ci/gimp-root, or $LAMA_GIMP_ROOT) and reused while its stamp
matches the package list. A flock serialises builders and users, so two test runs never mount
into the same root at once. Mounts are always undone, and a stale root is only ever removed
after unmounting and with `rm --one-file-system`, so a bind-mounted /dev can never be wiped.

Usage as a script (needs root):
    python3 tests/gimp/gimp_root.py build          # build or validate the cached root
    python3 tests/gimp/gimp_root.py batch FILE.py  # run a python-fu-eval batch script in it
"""
from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Mapping, Sequence

SUITE = "trixie"
DEFAULT_ROOT = Path("/var/tmp/lama-ci/gimp-root")
PACKAGES = ("gimp", "python3-gi", "gir1.2-gimp-3.0", "python3-zmq", "python3-msgpack", "python3-numpy",
            "xvfb", "xdotool")  # the last two drive the plug-in's dialog in the GUI test
BUILDER_VERSION = 1  # bump when the build steps change so cached roots are rebuilt
STAMP = "var/lib/lama-ci/ready.json"
BOOTSTRAP_STAMP = "var/lib/lama-ci/bootstrapped"
SEED_PROFILE = "var/lib/lama-ci/profile-seed"  # a GIMP profile queried once, copied per run
GIMP_LANG = "C.UTF-8"
# The seeded gimprc: no update checks, no swap surprises; the fixed LANG keeps the plug-in
# cache (which stores translated menu labels) valid between runs.
GIMPRC = '(check-updates no)\n(swap-path "/tmp")\n(temp-path "/tmp")\n'


class RootError(RuntimeError):
    """The GIMP root cannot be built or used; the message says which step failed."""


@dataclass(frozen=True)
class BatchResult:
    """What one gimp-console run left behind: exit status and the full log."""

    returncode: int
    stdout: str
    stderr: str
    seconds: float

    @property
    def log(self) -> str:
        return self.stdout + "\n" + self.stderr


def root_path() -> Path:
    """The cached root: $LAMA_GIMP_ROOT or /var/tmp/lama-ci/gimp-root."""
    return Path(os.environ.get("LAMA_GIMP_ROOT", str(DEFAULT_ROOT)))


def apt_mirror(sources: Sequence[Path] | None = None) -> str:
    """The Debian mirror the host's apt already uses ($LAMA_DEBIAN_MIRROR wins).

    Reads deb822 `.sources` files and one-line `.list` files and returns the first URI that
    serves the main Debian archive (not debian-security, not a third-party repository).
    """
    override = os.environ.get("LAMA_DEBIAN_MIRROR")
    if override:
        return override
    if sources is None:
        sources = [Path("/etc/apt/sources.list")] + sorted(Path("/etc/apt/sources.list.d").glob("*"))
    for path in sources:
        try:
            text = path.read_text()
        except OSError:
            continue
        for uri in _uris(text):
            if uri.rstrip("/").endswith("/debian"):
                return uri.rstrip("/")
    raise RootError("no Debian mirror found in /etc/apt/sources.list*; set LAMA_DEBIAN_MIRROR")


def _uris(text: str) -> list[str]:
    uris = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("URIs:"):
            uris += line.split()[1:]
        elif line.startswith("deb ") or line.startswith("deb\t"):
            rest = line[3:].strip()
            if rest.startswith("["):  # an options block such as "[arch=amd64 signed-by=...]"
                rest = rest.split("]", 1)[-1]
            words = rest.split()
            if words:
                uris.append(words[0])
    return uris


def _expected_stamp() -> dict:
    return {"suite": SUITE, "packages": list(PACKAGES), "builder": BUILDER_VERSION, "lang": GIMP_LANG}


def is_ready(root: Path) -> bool:
    """True when `root` holds a finished build for the current package list."""
    try:
        stamp = json.loads((root / STAMP).read_text())
    except (OSError, ValueError):
        return False
    return stamp == _expected_stamp() and (root / "usr/bin/gimp-console-3.0").exists()


@contextlib.contextmanager
def locked(root: Path) -> Iterator[None]:
    """Hold an exclusive lock beside `root` (builders and users of one root never overlap)."""
    root.parent.mkdir(parents=True, exist_ok=True)
    with open(root.parent / (root.name + ".lock"), "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def mounts_under(root: Path) -> list[str]:
    """Mount points at or below `root`, deepest first (the order to unmount them)."""
    prefix = str(root.resolve())
    points = []
    with open("/proc/self/mountinfo") as handle:
        for line in handle:
            point = line.split()[4].replace("\\040", " ")
            if point == prefix or point.startswith(prefix + "/"):
                points.append(point)
    return sorted(points, key=len, reverse=True)


def unmount_all(root: Path) -> None:
    """Unmount everything below `root`; raise if something stays mounted."""
    for point in mounts_under(root):
        if subprocess.run(["umount", point], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", point], capture_output=True)
    left = mounts_under(root)
    if left:
        raise RootError(f"still mounted under {root}: {left}")


@contextlib.contextmanager
def mounted(root: Path) -> Iterator[None]:
    """/proc, /dev and /dev/pts inside `root` for the duration of the block, then unmounted."""
    unmount_all(root)
    try:
        for args in (["-t", "proc", "proc", "proc"], ["--bind", "/dev", "dev"], ["--bind", "/dev/pts", "dev/pts"]):
            target = root / args[-1]
            target.mkdir(parents=True, exist_ok=True)
            _run(["mount", *args[:-1], str(target)], "mount " + args[-1])
        yield
    finally:
        unmount_all(root)


def remove_root(root: Path) -> None:
    """Delete a stale root safely: unmount first, never cross into another file system."""
    if not root.exists():
        return
    unmount_all(root)
    _run(["rm", "-rf", "--one-file-system", str(root)], "remove stale root")


def _run(cmd: Sequence[str], step: str, env: Mapping[str, str] | None = None, timeout: float = 1800) -> str:
    try:
        proc = subprocess.run(list(cmd), capture_output=True, text=True, env=env, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise RootError(f"{step} failed: {exc}") from exc
    if proc.returncode != 0:
        tail = (proc.stdout + proc.stderr)[-3000:]
        raise RootError(f"{step} failed (exit {proc.returncode}):\n{tail}")
    return proc.stdout


def chroot_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """A clean environment for commands inside the root (no host venv, pyenv or display)."""
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root", "LANG": GIMP_LANG,
           "LC_ALL": GIMP_LANG, "DEBIAN_FRONTEND": "noninteractive"}
    env.update(extra or {})
    return env


def build_root(root: Path | None = None, log=print) -> Path:
    """Return a ready root, building it when missing or stale (takes the lock itself)."""
    root = root or root_path()
    with locked(root):
        _build_locked(root, log)
    return root


def _build_locked(root: Path, log) -> None:
    if is_ready(root):
        return
    if os.geteuid() != 0:
        raise RootError("building the GIMP root needs root (debootstrap, mount, chroot)")
    if shutil.which("debootstrap") is None:
        raise RootError("debootstrap is not installed on the host (apt-get install debootstrap)")
    start = time.monotonic()
    if not (root / BOOTSTRAP_STAMP).exists():
        remove_root(root)
        mirror = apt_mirror()
        log(f"debootstrap {SUITE} into {root} from {mirror}")
        _run(["debootstrap", "--variant=minbase", SUITE, str(root), mirror], "debootstrap")
        (root / BOOTSTRAP_STAMP).parent.mkdir(parents=True, exist_ok=True)
        (root / BOOTSTRAP_STAMP).write_text(mirror + "\n")
    shutil.copyfile("/etc/resolv.conf", root / "etc/resolv.conf")
    with mounted(root):
        log("installing " + " ".join(PACKAGES))
        chroot = ["chroot", str(root)]
        _run(chroot + ["apt-get", "update"], "apt-get update", env=chroot_env())
        _run(chroot + ["apt-get", "install", "-y", "--no-install-recommends", *PACKAGES],
             "apt-get install", env=chroot_env())
        _run(chroot + ["apt-get", "clean"], "apt-get clean", env=chroot_env())
        log("seeding a GIMP profile")
        _seed_profile(root)
    stamp = root / STAMP
    stamp.write_text(json.dumps(_expected_stamp()))
    log(f"GIMP root ready in {time.monotonic() - start:.0f} s")


def _seed_profile(root: Path) -> None:
    """Run GIMP once on an empty profile so later runs skip re-querying its built-in plug-ins."""
    seed = root / SEED_PROFILE
    if seed.exists():
        shutil.rmtree(seed)
    seed.mkdir(parents=True)
    (seed / "gimprc").write_text(GIMPRC)
    result = _gimp_console(root, "/" + SEED_PROFILE, "import sys\nprint('seeded')\n", {}, 600)
    if result.returncode != 0 or not (seed / "pluginrc").exists():
        raise RootError(f"seeding the GIMP profile failed (exit {result.returncode}):\n{result.log[-3000:]}")


def _gimp_console(root: Path, profile_in_root: str, script: str, env: Mapping[str, str],
                  timeout: float, program: Sequence[str] = ("gimp-console-3.0", "-idf")) -> BatchResult:
    env = dict(env)
    # LD_PRELOAD names a file inside the root: set it after chroot, not for the host's chroot.
    preload = ["/usr/bin/env", "LD_PRELOAD=" + env.pop("LD_PRELOAD")] if "LD_PRELOAD" in env else []
    cmd = ["chroot", str(root), *preload, *program, "--batch-interpreter=python-fu-eval", "-b", "-", "--quit"]
    full_env = chroot_env({"GIMP3_DIRECTORY": profile_in_root, **env})
    start = time.monotonic()
    # Its own process group, so a hung GIMP goes down with every plug-in it started and leaves
    # nothing running inside the root (which must be unmounted afterwards).
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=full_env, start_new_session=True)
    try:
        out, err = proc.communicate(script, timeout=timeout)
        code = proc.returncode
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        code, err = 124, err + "\n[gimp-console timed out after %s s and was killed]" % timeout
    return BatchResult(code, out, err, time.monotonic() - start)


@contextlib.contextmanager
def session(root: Path | None = None, log=print) -> Iterator["GimpSession"]:
    """A ready, mounted, locked root; unmounted again when the block ends."""
    root = root or root_path()
    with locked(root):
        _build_locked(root, log)
        with mounted(root):
            workdir = Path(tempfile.mkdtemp(prefix="lama-gimp-", dir=root / "tmp"))
            try:
                yield GimpSession(root, workdir)
            finally:
                shutil.rmtree(workdir, ignore_errors=True)


@dataclass
class GimpSession:
    """One mounted root plus a scratch folder inside it (its /tmp/lama-gimp-*)."""

    root: Path
    workdir: Path

    def inside(self, path: Path) -> str:
        """The path as seen from inside the root."""
        return "/" + str(Path(path).resolve().relative_to(self.root.resolve()))

    def new_profile(self, plugins: Sequence[Path] = ()) -> Path:
        """A fresh copy of the seeded profile with each plug-in folder copied into plug-ins/."""
        profile = Path(tempfile.mkdtemp(prefix="profile-", dir=self.workdir))
        shutil.copytree(self.root / SEED_PROFILE, profile, dirs_exist_ok=True)
        for folder in plugins:
            shutil.copytree(folder, profile / "plug-ins" / Path(folder).name, symlinks=False)
        return profile

    def run_batch(self, script: str, profile: Path, env: Mapping[str, str] | None = None,
                  timeout: float = 300) -> BatchResult:
        """Run a python-fu-eval batch script in gimp-console-3.0 -idf and return its log."""
        return _gimp_console(self.root, self.inside(profile), script, dict(env or {}), timeout)

    def run_gui_batch(self, script: str, profile: Path, env: Mapping[str, str] | None = None,
                      timeout: float = 300) -> BatchResult:
        """The same with the full GIMP (gimp-3.0 -df) on a private Xvfb display, for dialogs."""
        with xvfb_display(self.root) as display:
            return _gimp_console(self.root, self.inside(profile), script, {**(env or {}), "DISPLAY": display},
                                 timeout, program=("gimp-3.0", "-df"))


@contextlib.contextmanager
def xvfb_display(root: Path) -> Iterator[str]:
    """An Xvfb server inside `root` on a display number it picks itself (-displayfd); stopped afterwards."""
    read_end, write_end = os.pipe()
    server = subprocess.Popen(["chroot", str(root), "Xvfb", "-displayfd", str(write_end), "-screen", "0",
                               "1280x1024x24", "-nolisten", "tcp"], pass_fds=(write_end,),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    os.close(write_end)
    try:
        with os.fdopen(read_end) as announced:
            number = announced.readline().strip()  # Xvfb writes the number once it accepts clients
        if not number.isdigit():
            raise RootError("Xvfb did not start inside the root (exit %s)" % server.poll())
        yield ":" + number
    finally:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("build", help="build or validate the cached root")
    batch = sub.add_parser("batch", help="run a python-fu-eval batch script in the root")
    batch.add_argument("script", type=Path)
    args = parser.parse_args(argv)
    try:
        if args.cmd == "build":
            start = time.monotonic()
            print(build_root(), f"ready ({time.monotonic() - start:.1f} s)")
            return 0
        with session() as gimp:
            result = gimp.run_batch(args.script.read_text(), gimp.new_profile())
            print(result.log)
            print(f"exit {result.returncode} in {result.seconds:.1f} s")
            return result.returncode
    except RootError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
