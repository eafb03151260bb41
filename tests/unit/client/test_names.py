"""Resource names in the client (podium.client.names): workflows/ and runs/
added where missing, anything else refused."""

from __future__ import annotations

import pytest

from podium.client import (
    run_name,
    workflow_name,
)


def test_names_are_normalized() -> None:
    assert workflow_name("erp") == "workflows/erp"
    assert workflow_name("workflows/erp") == "workflows/erp"
    assert run_name("abc") == "runs/abc"
    assert run_name("runs/abc") == "runs/abc"
    with pytest.raises(ValueError, match="expected workflows/"):
        workflow_name("runs/abc")
    with pytest.raises(ValueError, match="empty run name"):
        run_name(" ")
