"""The committed stubs in client/podium/v1 are exactly what scripts/gen_protos.py makes now.

Fails when a .proto changed (or was added or removed) without `make protos`.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parents[2]
COMMITTED = REPO / "client" / "podium" / "v1"


def _load_gen_protos() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_protos", REPO / "scripts" / "gen_protos.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_generated_stubs_are_fresh(tmp_path: Path) -> None:
    gen = _load_gen_protos()
    fresh = {p.name: p.read_bytes() for p in gen.generate(tmp_path)}
    committed = {
        p.name: p.read_bytes()
        for p in sorted(COMMITTED.iterdir())
        if p.is_file() and gen.is_generated(p)
    }
    assert fresh, "generation produced no files"
    assert sorted(committed) == sorted(fresh), (
        "stub files differ from the protos: run `make protos`"
    )
    stale = sorted(name for name in fresh if committed[name] != fresh[name])
    assert not stale, f"stale generated stubs {stale}: run `make protos`"
