"""The committed stubs of each language are exactly what scripts/gen_protos.py makes now
(buf generate with buf.gen.yaml): Python in client/podium/v1, TypeScript in
clients/node/src/gen/podium/v1.

Fails when a .proto changed (or was added or removed) without `make protos`.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[2]


def _load_gen_protos() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_protos", REPO / "scripts" / "gen_protos.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


GEN = _load_gen_protos()


@pytest.fixture(scope="module")
def fresh_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("generated")
    GEN.generate(root)
    return root


@pytest.mark.parametrize("language", sorted(GEN.LANGUAGES))
def test_generated_stubs_are_fresh(fresh_root: Path, language: str) -> None:
    fresh = {p.name: p.read_bytes() for p in GEN.generated_files(fresh_root, language)}
    committed = {p.name: p.read_bytes() for p in GEN.generated_files(REPO, language)}
    assert fresh, f"generation produced no {language} files"
    assert sorted(committed) == sorted(fresh), (
        f"{language} stub files differ from the protos: run `make protos`"
    )
    stale = sorted(name for name in fresh if committed[name] != fresh[name])
    assert not stale, f"stale generated {language} stubs {stale}: run `make protos`"


def test_every_proto_has_stubs_in_every_language() -> None:
    protos = sorted(p.stem for p in (REPO / "protos" / "podium" / "v1").glob("*.proto"))
    python = sorted(
        p.name.removesuffix("_pb2.py")
        for p in GEN.generated_files(REPO, "python")
        if p.name.endswith("_pb2.py")
    )
    typescript = sorted(
        p.name.removesuffix("_pb.ts") for p in GEN.generated_files(REPO, "typescript")
    )
    assert python == protos
    assert typescript == protos
