"""CEL's decimal functions agree with Python's exact decimal arithmetic on
any decimal strings, and leave every other CEL operator as it was."""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal, localcontext

from hypothesis import given
from hypothesis import strategies as st

from podium.core.expressions import compile_expression

texts = st.decimals(
    min_value=Decimal("-1e15"), max_value=Decimal("1e15"), allow_nan=False, places=6
).map(lambda d: format(d, "f"))


def evaluate(source: str, **variables: object) -> object:
    return compile_expression(source, ("input",)).evaluate({"input": variables})


@given(a=texts, b=texts)
def test_arithmetic_is_exact(a: str, b: str) -> None:
    x, y = Decimal(a), Decimal(b)
    with localcontext(prec=100):  # Python's default 28 digits would round the reference
        assert Decimal(str(evaluate("decimal(input.a) + decimal(input.b)", a=a, b=b))) == x + y
        assert Decimal(str(evaluate("decimal(input.a) - decimal(input.b)", a=a, b=b))) == x - y
        assert Decimal(str(evaluate("decimal(input.a) * decimal(input.b)", a=a, b=b))) == x * y
    assert evaluate("decimal(input.a) < decimal(input.b)", a=a, b=b) == (x < y)
    assert evaluate("decimal(input.a) == decimal(input.b)", a=a, b=b) == (x == y)


@given(a=texts, places=st.integers(0, 6))
def test_round_and_fixed_are_half_even(a: str, places: int) -> None:
    expected = Decimal(a).quantize(Decimal(1).scaleb(-places), ROUND_HALF_EVEN)
    rounded = evaluate("round(decimal(input.a), input.p, 'HALF_EVEN')", a=a, p=places)
    assert Decimal(str(rounded)) == expected
    fixed = str(evaluate("fixed(decimal(input.a), input.p)", a=a, p=places))
    assert Decimal(fixed) == expected
    assert len(fixed.partition(".")[2]) == places


@given(n=st.integers(-(2**53), 2**53))
def test_integers_stay_integers_in_cel(n: int) -> None:
    result = evaluate("input.n + 0", n=n)
    assert type(result) is int and result == n
    assert evaluate("string(decimal(input.n))", n=n) == str(n)


def test_other_operators_are_untouched() -> None:
    assert evaluate("type(1) == int && [1] == [1] && 'a' + 'b' == 'ab'") is True
    assert evaluate("-1.5 + 2.0") == 0.5
    assert evaluate("0.1 + 0.2") == 0.30000000000000004  # doubles stay doubles
