"""Build step (setuptools ``build_py``, named in pyproject.toml): put the package data into the wheel.

Copies each entry of :data:`routerwatch.packagedata.SHIPPED` from the repository into
``routerwatch/_data/`` of the build, so that the repository keeps the only copy of ``sql/``,
``deploy/prices.toml`` and the example canary set. Used at build time only; an editable install
is left alone (it reads the source tree). A file missing at build time fails the build: a wheel
without its migrations would install a service with no schema.
"""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

from setuptools.command.build_py import build_py

_HERE = Path(__file__).resolve().parent
_ROOT = _HERE.parents[1]


def _shipped() -> tuple[dict[str, str], str]:
    # Loaded from its file: at build time the routerwatch package is not importable.
    spec = importlib.util.spec_from_file_location("_routerwatch_packagedata", _HERE / "packagedata.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.SHIPPED, module.DATA_DIR


class BuildPy(build_py):
    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return
        shipped, data_dir = _shipped()
        target = Path(self.build_lib) / "routerwatch" / data_dir
        shutil.rmtree(target, ignore_errors=True)  # an earlier build's copy may hold a file removed since
        self._data_outputs: list[str] = []
        for name, source in shipped.items():
            src = _ROOT / source
            if src.is_dir():
                files = sorted(p for p in src.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
                pairs = [(p, target / name / p.relative_to(src)) for p in files]
            elif src.is_file():
                pairs = [(src, target / name)]
            else:
                raise FileNotFoundError(f"package data {source} is missing from {_ROOT}")
            if not pairs:
                raise FileNotFoundError(f"package data folder {source} is empty")
            for src_file, dst in pairs:
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(src_file, dst)
                self._data_outputs.append(str(dst))

    def get_outputs(self, include_bytecode: bool = True) -> list[str]:
        return [*super().get_outputs(include_bytecode), *getattr(self, "_data_outputs", [])]
