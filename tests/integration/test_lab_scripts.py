"""The lab's bad settings stop with a message that says what to do."""

import os
import shutil
import subprocess

import pytest

BUILD_IMAGE = "lab/build-image.sh"


def run(repo, env, *args):
    return subprocess.run(
        ["bash", BUILD_IMAGE, *args], cwd=repo, env=env, capture_output=True, text=True, check=False, timeout=120
    )


def test_missing_podman_names_the_fix(repo, tmp_path):
    # A PATH with the shell tools the script needs, but no podman.
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for tool in ("bash", "cat", "sha256sum", "cut", "dirname", "id"):
        (bindir / tool).symlink_to(shutil.which(tool))
    env = {"PATH": str(bindir), "PGHARBOR_IMAGE": "localhost/pgharbor-test-missing:never"}
    result = run(repo, env)
    assert result.returncode != 0
    assert "podman is missing" in result.stderr
    assert "make system-deps" in result.stderr


def test_image_name_is_required(repo):
    env = {k: v for k, v in os.environ.items() if k != "PGHARBOR_IMAGE"}
    result = run(repo, env)
    assert result.returncode != 0
    assert "PGHARBOR_IMAGE" in result.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="debootstrap runs as root only")
@pytest.mark.skipif(shutil.which("debootstrap") is None, reason="debootstrap is not installed")
def test_unreachable_mirror_names_the_setting(repo):
    # Port 9 (discard) on loopback: refused at once, no traffic leaves the machine.
    env = dict(os.environ, PGHARBOR_IMAGE="localhost/pgharbor-test-missing:never",
               DEBIAN_MIRROR="http://127.0.0.1:9/debian")
    result = run(repo, env)
    assert result.returncode != 0
    assert "debootstrap failed" in result.stderr
    assert "DEBIAN_MIRROR" in result.stderr
    listed = subprocess.run(["podman", "image", "exists", "localhost/pgharbor-test-missing:never"], check=False)
    assert listed.returncode == 1, "a failed build must not leave an image behind"
