"""coord as a user installs it: build a wheel from a clean copy of this tree, make a scratch
virtual environment and install the wheel into it (bytecode compiled at install, no
editable finder). The dependencies are not downloaded: the new environment sees this
interpreter's site-packages through a .pth line (after its own, so the installed coord
wins). Prints the new environment's python.

    .venv/bin/python scripts/wheel_venv.py DEST

Used by bench/startup_bench.py and tests/tools/test_wheel.py.
"""

import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def build_wheel(out: Path) -> Path:
    """A wheel of this tree, built from a copy (the build leaves nothing in the tree)."""
    with tempfile.TemporaryDirectory(prefix="coord-wheel-src-") as tmp:
        src = Path(tmp)
        for name in ("pyproject.toml", "setup.py", "README.md"):
            if (ROOT / name).exists():
                shutil.copy2(ROOT / name, src / name)
        shutil.copytree(ROOT / "src", src / "src", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        subprocess.run(
            [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation"]
            + ["--no-index", "--disable-pip-version-check", "-w", str(out), str(src)],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
    [wheel] = out.glob("coord-*.whl")
    return wheel


def make(dest: Path) -> Path:
    dest = Path(dest)
    wheel = build_wheel(dest.parent / (dest.name + "-dist"))
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(dest)], check=True)
    py = dest / "bin" / "python"
    site = subprocess.run(
        [str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    # The dependencies from this interpreter's environment, after the new one's own packages.
    Path(site, "coord-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # pip compiles the bytecode at install
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(py), "install", "--quiet", "--no-deps", "--no-index"]
        + ["--disable-pip-version-check", str(wheel)],
        check=True,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    return py


if __name__ == "__main__":
    print(make(Path(sys.argv[1])))
