"""Where the files savd ships besides code live: the checkout when running from one, else the copies
installed inside the package.

    checkout                          installed package (setup.py copies them at build time)
    configs/*.toml, *.yaml            appliance/configs/
    containerlab/<lab>/...            appliance/labs/<lab>/...

In the installed labs, setup.py rewrites the binds `../../appliance/lab/bgpls_exporter.py` to
`../../lab/bgpls_exporter.py`, so they reach the same installed module. Files that only code
reads (ExaBGP templates, the scenario suite) live inside the package in both cases and need no lookup.
Must not: read the environment or the working directory.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["PACKAGE_ROOT", "shipped"]

PACKAGE_DIR = Path(__file__).resolve().parent
# the directory holding the `appliance` package: the checkout, or site-packages once installed; children
# started by savd get it as PYTHONPATH
PACKAGE_ROOT = PACKAGE_DIR.parent
INSTALLED = {"configs": PACKAGE_DIR / "configs", "containerlab": PACKAGE_DIR / "labs"}


def is_checkout(root: Path = PACKAGE_ROOT) -> bool:
    """True when `appliance` is imported from a source tree (its pyproject.toml and configs/ beside it)."""
    return (root / "pyproject.toml").is_file() and (root / "configs").is_dir()


def shipped(relative: str | Path) -> Path:
    """The path of a shipped file, given as in the checkout (`configs/demo.toml`,
    `containerlab/sav-basic/sav-basic.clab.yml`). ValueError for a path outside the shipped folders."""
    parts = Path(relative).parts
    if not parts or parts[0] not in INSTALLED:
        raise ValueError(f"{relative}: not a shipped file (under {', '.join(sorted(INSTALLED))})")
    if is_checkout():
        return PACKAGE_ROOT.joinpath(*parts)
    return INSTALLED[parts[0]].joinpath(*parts[1:])
