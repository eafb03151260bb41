"""Every proto of the contract names its Go and Java packages, so that a Go or Java client
generates from protos/ as it is (the committed Python descriptors carry the options)."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

PROTOS = sorted((Path(__file__).resolve().parents[2] / "protos" / "podium" / "v1").glob("*.proto"))


@pytest.mark.parametrize("proto", [p.stem for p in PROTOS])
def test_every_proto_names_its_go_and_java_packages(proto: str) -> None:
    options = importlib.import_module(f"podium.v1.{proto}_pb2").DESCRIPTOR.GetOptions()
    assert options.go_package == "podium/gen/go/podium/v1;podiumv1"
    assert options.java_package == "dev.podium.v1"
    assert options.java_multiple_files
