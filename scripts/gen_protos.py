"""Generate the committed stubs of every language from protos/podium/v1/*.proto.

Usage: python scripts/gen_protos.py [OUT_ROOT]   (OUT_ROOT defaults to the repository)

Runs `buf generate` with buf.gen.yaml, which writes, under OUT_ROOT:
- client/podium/v1/<name>_pb2.py, _pb2.pyi, _pb2_grpc.py and _pb2_grpc.pyi (Python), and
  <name>_connect.py for each file with a service (Connect, served by server/podium/http/);
- clients/node/src/gen/podium/v1/<name>_pb.ts (TypeScript, protobuf-es), and the same in
  console/src/gen/podium/v1/ for the web console.
Run it with the project venv's interpreter (``make protos``), so that buf, grpcio-tools,
mypy-protobuf and protoc-gen-es are the locked versions and the output is reproducible byte for
byte (tests/repo/test_stubs_fresh.py checks this for each language).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BUF = REPO / "node_modules" / ".bin" / "buf"
# Where each language's stubs of the package podium.v1 go, relative to OUT_ROOT, and how the
# names of the generated files end.
LANGUAGES: dict[str, tuple[Path, tuple[str, ...]]] = {
    "python": (
        Path("client/podium/v1"),
        ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py", "_pb2_grpc.pyi", "_connect.py"),
    ),
    "typescript": (Path("clients/node/src/gen/podium/v1"), ("_pb.ts",)),
    "console typescript": (Path("console/src/gen/podium/v1"), ("_pb.ts",)),
}


def is_generated(path: Path, language: str) -> bool:
    return path.name.endswith(LANGUAGES[language][1])


def generated_files(root: Path, language: str) -> list[Path]:
    """The generated files of a language under root, sorted."""
    target = root / LANGUAGES[language][0]
    if not target.is_dir():
        return []
    return sorted(p for p in target.iterdir() if p.is_file() and is_generated(p, language))


def generate(out_root: Path) -> dict[str, list[Path]]:
    """Generate every language's stubs under out_root; the generated files by language."""
    out_root = out_root.resolve()
    # Remove stale stubs (e.g. of a deleted .proto) so that the output is exactly the protos'.
    for language in LANGUAGES:
        for old in generated_files(out_root, language):
            old.unlink()
    # buf.gen.yaml names its plugins relative to the repository: run from there.
    subprocess.run(
        [str(BUF), "generate", "--template", "buf.gen.yaml", "--output", str(out_root)],
        check=True,
        cwd=REPO,
    )
    return {language: generated_files(out_root, language) for language in LANGUAGES}


def main(argv: list[str]) -> int:
    out_root = Path(argv[1]) if len(argv) > 1 else REPO
    for language, files in generate(out_root).items():
        print(f"generated {len(files)} {language} files in {out_root / LANGUAGES[language][0]}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
