"""Generate the Python gRPC stubs for protos/podium/v1/*.proto.

Usage: python scripts/gen_protos.py [OUT_DIR]   (OUT_DIR defaults to ``client``)

Writes OUT_DIR/podium/v1/<name>_pb2.py, _pb2.pyi, _pb2_grpc.py and _pb2_grpc.pyi.
Run it with the project venv's interpreter (``make protos``), so that grpcio-tools and
mypy-protobuf are the locked versions and the output is reproducible byte for byte
(tests/repo/test_stubs_fresh.py checks this).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PROTO_ROOT = REPO / "protos"
PROTO_PACKAGE = Path("podium") / "v1"
GENERATED_SUFFIXES = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py", "_pb2_grpc.pyi")


def proto_files() -> list[str]:
    """The .proto files, relative to protos/, in a fixed order."""
    return sorted(
        p.relative_to(PROTO_ROOT).as_posix() for p in (PROTO_ROOT / PROTO_PACKAGE).glob("*.proto")
    )


def is_generated(path: Path) -> bool:
    return path.name.endswith(GENERATED_SUFFIXES)


def generate(out_dir: Path) -> list[Path]:
    """Generate the stubs into out_dir and return the generated files, sorted."""
    out_dir = out_dir.resolve()
    target = out_dir / PROTO_PACKAGE
    target.mkdir(parents=True, exist_ok=True)
    # Remove stale stubs (e.g. of a deleted .proto) so that the output is exactly the protos'.
    for old in target.iterdir():
        if old.is_file() and is_generated(old):
            old.unlink()
    bindir = Path(sys.executable).parent  # the venv's bin/, holding mypy-protobuf's plugins
    cmd = [
        sys.executable,
        "-m",
        "grpc_tools.protoc",
        f"-I{PROTO_ROOT}",
        f"--python_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        # Typed stubs from mypy-protobuf rather than protoc's --pyi_out: they also type enum
        # values (Enum.ValueType), HasField/ClearField names and the grpc stubs/servicers.
        f"--plugin=protoc-gen-mypy={bindir / 'protoc-gen-mypy'}",
        f"--mypy_out=quiet:{out_dir}",
        f"--plugin=protoc-gen-mypy_grpc={bindir / 'protoc-gen-mypy_grpc'}",
        f"--mypy_grpc_out=quiet:{out_dir}",
        *proto_files(),
    ]
    subprocess.run(cmd, check=True, cwd=PROTO_ROOT)
    return sorted(p for p in target.iterdir() if p.is_file() and is_generated(p))


def main(argv: list[str]) -> int:
    out_dir = Path(argv[1]) if len(argv) > 1 else REPO / "client"
    files = generate(out_dir)
    print(f"generated {len(files)} files in {out_dir / PROTO_PACKAGE}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
