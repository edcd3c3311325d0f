"""Build hook: everything else is in pyproject.toml.

`build_py` puts into the wheel what a checkout keeps outside the package, so an installed savd runs from
any directory (appliance/shipped.py finds both):
- configs/*.toml, *.yaml        -> appliance/configs/   (example and demo configurations)
- containerlab/<lab>/**         -> appliance/labs/<lab>/ (the demo's topologies and node configs; binds of
  ../../appliance/<file> become ../../<file>, the same file in the installed package)
- GoBGP gRPC stubs              -> appliance/speakers/gobgp_pb/, generated from Debian's protos when they
  are installed (packaging/gobgp_stubs.py), else the checkout's generated copy if there is one.
Editable installs read the checkout and skip all of this.
"""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent


def _stubs_module():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("gobgp_stubs", ROOT / "packaging" / "gobgp_stubs.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class BuildWithData(build_py):
    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return
        package = Path(self.build_lib) / "appliance"
        configs = package / "configs"
        configs.mkdir(parents=True, exist_ok=True)
        for path in sorted((ROOT / "configs").iterdir()):
            if path.suffix in (".toml", ".yaml", ".yml"):
                shutil.copy(path, configs / path.name)
        labs = package / "labs"
        shutil.copytree(ROOT / "containerlab", labs, dirs_exist_ok=True)
        for topology in labs.glob("*/*.clab.yml"):  # binds reach the package: ../../appliance/x -> ../../x
            topology.write_text(topology.read_text().replace("../../appliance/", "../../"))
        stubs = _stubs_module()
        out = package / "speakers" / "gobgp_pb"
        if stubs.has_protos():
            stubs.generate(out)
        elif not (out / "gobgp_pb2.py").exists():
            self.warn("GoBGP protos not installed and no generated stubs in the checkout: the GoBGP speaker "
                      "will not work (apt-get install golang-github-osrg-gobgp-dev)")


setup(cmdclass={"build_py": BuildWithData})
