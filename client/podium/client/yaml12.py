"""YAML 1.2 (core schema) on top of PyYAML, which implements YAML 1.1.

YAML 1.1 turns `country: NO` into false, `on`/`off`/`yes`/`y` into booleans, `010` into 8 and
`1:30` into 90; YAML 1.2 (what editors and most other parsers now follow) has only
`true`/`false` as booleans and plain decimal, `0o` octal and `0x` hexadecimal integers. Workflow
definitions carry country codes, IDs and times in `config` and `input` values, so the 1.1 rules
silently corrupt them. Timestamps are not resolved either: the proto JSON mapping wants strings
where YAML would produce datetime objects.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

__all__ = ["Yaml12Loader", "load"]

_BOOL = re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$")
_INT = re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$")
_FLOAT = re.compile(
    r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
    r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
)
_NULL = re.compile(r"^(?:~|null|Null|NULL|)$")


class Yaml12Loader(yaml.SafeLoader):
    """A SafeLoader (no arbitrary objects) resolving plain scalars by the YAML 1.2 core schema."""


def _construct_int(loader: yaml.SafeLoader, node: yaml.Node) -> int:
    text = str(loader.construct_scalar(node))  # type: ignore[arg-type]
    if text.startswith("0o"):
        return int(text[2:], 8)
    if text.startswith("0x"):
        return int(text[2:], 16)
    # Leading zeros are decimal in YAML 1.2 (`010` is ten, not eight).
    return int(text, 10)


def _construct_bool(loader: yaml.SafeLoader, node: yaml.Node) -> bool:
    return str(loader.construct_scalar(node)).lower() == "true"  # type: ignore[arg-type]


Yaml12Loader.yaml_implicit_resolvers = {}
for _tag, _pattern, _first in (
    ("tag:yaml.org,2002:bool", _BOOL, "tTfF"),
    ("tag:yaml.org,2002:int", _INT, "-+0123456789"),
    ("tag:yaml.org,2002:float", _FLOAT, "-+0123456789."),
    ("tag:yaml.org,2002:null", _NULL, ["~", "n", "N", ""]),
):
    Yaml12Loader.add_implicit_resolver(_tag, _pattern, list(_first))
# `<<` merge keys are kept: YAML 1.2 dropped them, but definitions that share blocks use them and
# no plain value can be mistaken for one.
Yaml12Loader.add_implicit_resolver("tag:yaml.org,2002:merge", re.compile(r"^(?:<<)$"), ["<"])
Yaml12Loader.add_constructor("tag:yaml.org,2002:int", _construct_int)
Yaml12Loader.add_constructor("tag:yaml.org,2002:bool", _construct_bool)


def load(text: str) -> Any:
    """One YAML 1.2 document; raises yaml.YAMLError when it is not valid YAML."""
    return yaml.load(text, Loader=Yaml12Loader)
