"""A CEL mistake in a workflow is reported with its position and in words, not as the parser's
token list."""

from __future__ import annotations

import pytest

from podium.core.expressions import ExpressionError, compile_expression


@pytest.mark.parametrize(
    ("source", "message"),
    [
        (
            "input.a +",
            "at column 10: the expression ends too early"
            " (an operand or a closing bracket is missing)",
        ),
        ("input.a ==== 1", "at column 11: unexpected '=='"),
        ("input.a.b)", "at column 10: unexpected ')'"),
        ('"abc', "at column 1: cannot read '\"abc' (an unterminated string or a stray character?)"),
        ("inptu.name", "at column 6: unknown name 'inptu.name' (did you mean 'input'?)"),
        ("stpes.a.output", "unknown name 'stpes.a.output' (did you mean 'steps'?)"),
        ("1 + 'a'", "at column 3: '+' cannot be applied to (int, string)"),
        ("!'a'", "at column 1: '!' cannot be applied to (string)"),
        ("input.a\n  + ", "at line 2 column 5: the expression ends too early"),
    ],
)
def test_compile_errors_say_where_and_what(source: str, message: str) -> None:
    with pytest.raises(ExpressionError) as caught:
        compile_expression(source)
    text = str(caught.value)
    assert text.startswith(message) or message in text
    # No grammar dump: ANTLR's token sets and rule names never reach the user.
    assert "expecting {" not in text and "Syntax error" not in text and "NUM_INT" not in text
