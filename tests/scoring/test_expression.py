"""Image-set expressions: terms, combine(), name resolution, one-line errors, and a random grammar check."""
import ast
import random
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch

import viscnn.scoring.expression as expression_module
from viscnn.errors import ViscnnError
from viscnn.scoring.expression import Expression, parse_expression


@pytest.mark.parametrize("text, terms", [
    ("tiger - overall", {"tiger": 1, "overall": -1}),
    ("tiger", {"tiger": 1}),
    ("0.5*goldfish + 0.5*tench", {"goldfish": 0.5, "tench": 0.5}),
    ("collie + shepherd - 2*overall", {"collie": 1, "shepherd": 1, "overall": -2}),
    ("(a + b) / 2 - overall", {"a": 0.5, "b": 0.5, "overall": -1}),
    ("-a", {"a": -1}),
    ("+a", {"a": 1}),
    ("a*0.5", {"a": 0.5}),
    ("2*(a - b)", {"a": 2, "b": -2}),
    ("1e-3*a", {"a": 0.001}),
    ("2.5E+2*a - .5*b + 3.*c", {"a": 250, "b": -0.5, "c": 3}),
    ("a/4/2 + -b", {"a": 0.125, "b": -1}),
    ("2*-a", {"a": -2}),
    ("(1 + 2) * a", {"a": 3}),
    ("a + a", {"a": 2}),
    ("a + b - a + 3*(a - b)", {"a": 3, "b": -2}),
    ("a - a + b", {"b": 1}),  # zero-coefficient terms are dropped
    ("0*a + b", {"b": 1}),
    ("0.1*a + 0.2*a - 0.3*a + b", {"b": 1}),  # exact arithmetic: no 5.5e-17 left over
    ("((((a))))", {"a": 1}),
    ("my.set_2 -\t_x\n+ y", {"my.set_2": 1, "_x": -1, "y": 1}),
    ("'t-shirt_top' - \"243-bull_mastiff\" + 2*`ankle boot`", {"t-shirt_top": 1, "243-bull_mastiff": -1, "ankle boot": 2}),
])
def test_examples_give_the_right_terms(text, terms):
    expression = parse_expression(text)
    assert expression.terms == pytest.approx(terms)
    assert list(expression.terms) == list(terms)  # first-appearance order
    assert expression.text == text
    assert all(isinstance(value, float) for value in expression.terms.values())


def test_str_is_canonical_and_parses_back():
    assert str(parse_expression("tiger-overall")) == "tiger - overall"
    assert str(parse_expression("goldfish*0.5 + 0.5*tench")) == "0.5*goldfish + 0.5*tench"
    assert str(parse_expression("-a + 2*b - 2*(c)")) == "-a + 2*b - 2*c"
    assert str(parse_expression("(a + b)/3")) == "0.3333333333333333*a + 0.3333333333333333*b"
    assert str(parse_expression("`t-shirt_top` - `it's`")) == "'t-shirt_top' - \"it's\""
    for text in ["1e-20*a - 1e20*b", "'x y' + `a'b\"c` / 7", "a - 2.5*b"]:
        expression = parse_expression(text)
        assert parse_expression(str(expression)).terms == expression.terms


def test_combine_floats_arrays_tensors_and_objects():
    expression = parse_expression("collie + shepherd - 2*overall")
    assert expression.combine({"collie": 1.0, "shepherd": 2.0, "overall": 0.25}) == pytest.approx(2.5)
    a, b, c = np.arange(6.0).reshape(2, 3), np.ones((2, 3)), np.full((2, 3), 3.0)
    np.testing.assert_allclose(expression.combine({"collie": a, "shepherd": b, "overall": c}), a + b - 6)
    t = {name: torch.randn(4, 5) for name in ["collie", "shepherd", "overall"]}
    combined = expression.combine(t)
    assert isinstance(combined, torch.Tensor)
    torch.testing.assert_close(combined, t["collie"] + t["shepherd"] - 2 * t["overall"])
    assert parse_expression("(a + b)/2").combine({"a": 1, "b": 2, "unused": 5}) == pytest.approx(1.5)

    class Vec:
        def __init__(self, x: float) -> None:
            self.x = x

        def __mul__(self, k: float) -> "Vec":
            return Vec(self.x * k)

        __rmul__ = __mul__

        def __add__(self, other: "Vec") -> "Vec":
            return Vec(self.x + other.x)

    assert parse_expression("0.5*a - b").combine({"a": Vec(4), "b": Vec(1)}).x == pytest.approx(1)


def test_combine_names_a_missing_set():
    with pytest.raises(ViscnnError, match="no values for image set 'b'"):
        parse_expression("a - b").combine({"a": 1.0})


def test_expression_is_frozen_and_hashable():
    expression = parse_expression("a - b")
    with pytest.raises(AttributeError):
        expression.text = "c"  # type: ignore[misc]
    assert expression == Expression({"a": 1.0, "b": -1.0}, "a - b")
    assert len({expression, parse_expression("a - b")}) == 1


NAMES = ["243-bull_mastiff", "000_overall", "t-shirt_top", "ankle boot", "1-dog", "2_dog", "tiger", "tigers"]


def test_names_resolve_with_index_prefix_and_quotes():
    assert parse_expression("bull_mastiff - overall", NAMES).terms == {"243-bull_mastiff": 1.0, "000_overall": -1.0}
    assert parse_expression("'243-bull_mastiff' + 'bull_mastiff'", NAMES).terms == {"243-bull_mastiff": 2.0}
    assert parse_expression("`t-shirt_top` - \"ankle boot\"", NAMES).terms == {"t-shirt_top": 1.0, "ankle boot": -1.0}
    assert parse_expression("tiger - tigers", NAMES).terms == {"tiger": 1.0, "tigers": -1.0}
    assert parse_expression("'1-dog' - '2_dog'", NAMES).terms == {"1-dog": 1.0, "2_dog": -1.0}
    assert parse_expression("bull_mastiff - bull_mastiff + tiger", iter(NAMES)).terms == {"tiger": 1.0}


def test_ambiguous_name_lists_candidates():
    with pytest.raises(ViscnnError, match=r"ambiguous image set 'dog' in 'dog - tiger': it could be 1-dog, 2_dog"):
        parse_expression("dog - tiger", NAMES)


def test_unknown_name_lists_known_sets_and_suggests():
    with pytest.raises(ViscnnError) as info:
        parse_expression("tigr - overall", ["tiger", "overall"])
    assert str(info.value) == "unknown image set 'tigr' in 'tigr - overall' (known: tiger, overall); did you mean 'tiger'?"
    with pytest.raises(ViscnnError, match="did you mean '243-bull_mastiff'"):
        parse_expression("bull_mastif", NAMES)
    many = [f"set{i:02d}" for i in range(30)]
    with pytest.raises(ViscnnError) as info:
        parse_expression("zebra", many)
    message = str(info.value)
    assert "set09, ... (30 in all)" in message and "set10" not in message and "did you mean" not in message
    with pytest.raises(ViscnnError, match=r"known: none"):
        parse_expression("a", [])


@pytest.mark.parametrize("text, column, fragment", [
    ("a +", 4, "(end of input): expected a set name, a number or '(' after '+'"),
    ("a - b *", 8, "after '*'"),
    ("(a + b", 7, "expected ')' to close the '(' at column 1"),
    ("((a) + b", 9, "expected ')' to close the '(' at column 1"),
    ("a + b)", 6, "this ')' has no matching '('"),
    ("(a))", 4, "no matching '('"),
    (")a", 1, "expected a set name, a number or '(' at the start"),
    ("()", 2, "after '('"),
    ("a ; b", 3, "unexpected character ';'"),
    ("a $ b", 3, "('$ b'): unexpected character '$'"),
    ("a + 'b", 5, "unterminated quote: the set name has no closing '"),
    ('a + "b', 5, 'no closing "'),
    ("a + `b - c", 5, "no closing `"),
    ("a + ''", 5, "empty quoted set name"),
    ("a b", 3, "expected an operator (+ - * /) or the end after 'a'"),
    ("'a' 'b'", 5, "expected an operator"),
    ("a (b)", 3, "expected an operator"),
    ("1 2*a", 3, "expected an operator"),
    ("a + * b", 5, "('* b'): expected a set name, a number or '(' after '+'"),
    ("a * / b", 5, "after '*'"),
    ("a**2", 3, "after '*'"),
    ("3 a", 3, "put '*' between a number and what it multiplies"),
    ("2(a - b)", 2, "put '*'"),
    ("a + 0.5 b", 9, "put '*'"),
    ("1e999*a", 1, "number '1e999' is out of range (too large)"),
    ("a*1e-999", 3, "out of range (too small)"),
    ("a*b", 2, "cannot multiply two image sets"),
    ("(a + b)*(c - d)", 8, "cannot multiply two image sets"),
    ("a/b", 2, "cannot divide by an image set"),
    ("2/a", 2, "cannot divide by an image set"),
    ("a/0", 2, "division by zero"),
    ("a/(1 - 1)", 2, "division by zero"),
    ("a^2", 2, "powers ('^') are not allowed"),
    ("a + 2", 3, "cannot add or subtract a number and an image set"),
    ("2 - a", 3, "cannot add or subtract"),
    ("243-bull_mastiff", 4, "quote set names containing '-', e.g. '243-bull_mastiff'"),
    ("(" * 51 + "a" + ")" * 51, 51, "nested more than 50 deep"),
    ("café", 4, "unexpected character 'é'"),
    ("a +\n* b", 5, "after '+'"),
])
def test_syntax_errors_name_the_column(text, column, fragment):
    with pytest.raises(ViscnnError) as info:
        parse_expression(text)
    message = str(info.value)
    assert message.startswith(f"cannot parse image-set expression at column {column} ")
    assert fragment in message
    assert "\n" not in message


@pytest.mark.parametrize("text, fragment", [
    ("", "empty image-set expression"),
    ("   \t\n", "empty image-set expression"),
    ("a" * 1001, "too long (1001 characters; at most 1000)"),
    ("2", "has no image set in it"),
    ("(1 + 2)/3", "has no image set in it"),
    ("a - a", "'a - a' cancels to nothing"),
    ("0*a", "cancels to nothing"),
    ("2*(a - b) - 2*a + 2*b", "cancels to nothing"),
    ("1e300*1e300*a", "coefficient of 'a' in '1e300*1e300*a' is too large"),
])
def test_other_errors_are_one_line(text, fragment):
    with pytest.raises(ViscnnError) as info:
        parse_expression(text)
    assert fragment in str(info.value) and "\n" not in str(info.value)


def test_limits_hold_without_recursion_errors():
    assert parse_expression("(" * 50 + "a" + ")" * 50).terms == {"a": 1.0}
    assert parse_expression("-" * 999 + "a").terms == {"a": -1.0}
    assert parse_expression("a" * 1000).terms == {"a" * 1000: 1.0}
    with pytest.raises(ViscnnError, match="nested more than 50 deep"):
        parse_expression("(" * 499 + "a" + ")" * 499)
    assert parse_expression("0e99999999*a + b").terms == {"b": 1.0}  # fast: no 10**99999999
    with pytest.raises(ViscnnError, match="out of range"):
        parse_expression("1e-99999999*a")
    with pytest.raises(ViscnnError) as info:
        parse_expression("x" * 200 + " - 'y\nz'", ["a"])
    assert "\n" not in str(info.value) and len(str(info.value)) < 400


def test_module_has_no_eval_or_exec():
    source = Path(expression_module.__file__).read_text()
    called = {node.func.id for node in ast.walk(ast.parse(source))
              if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)}
    assert not called & {"eval", "exec", "compile", "__import__"}
    assert "eval(" not in source and "exec(" not in source
    assert len(source.splitlines()) < 260


# --- random expressions from the grammar, with coefficients computed here ------------------------------------

SET_NAMES = ["a", "b", "tiger", "my_set.v2", "t-shirt_top", "ankle boot"]


def _name_text(rng: random.Random, name: str) -> str:
    if name.replace("_", "a").replace(".", "a").isalnum() and rng.random() < 0.7:
        return name
    quote = rng.choice("'\"`")
    return f"{quote}{name}{quote}"


def _number(rng: random.Random) -> tuple[str, Fraction]:
    """A non-zero number's text and value: integers, decimals, scientific notation."""
    kind = rng.randrange(4)
    if kind == 0:
        n = rng.randint(1, 9)
        return str(n), Fraction(n)
    n = rng.randint(1, 99)
    if kind == 1:
        return (f"{n // 10}.{n % 10}", Fraction(n, 10)) if rng.random() < 0.5 else (f".{n:02d}", Fraction(n, 100))
    exponent = rng.randint(-3, 3)
    return f"{n}{rng.choice('eE')}{exponent:+d}" if kind == 2 else f"{n}e{exponent}", n * Fraction(10) ** exponent


def _generate(rng: random.Random, depth: int) -> tuple[str, dict[str, Fraction], str]:
    """(text, coefficients, kind): a random linear set expression, its coefficients, and its top-level kind."""
    choice = rng.randrange(7) if depth > 0 else 0
    if choice == 0:
        name = rng.choice(SET_NAMES)
        return _name_text(rng, name), {name: Fraction(1)}, "atom"
    if choice == 1:  # sum or difference; only a sum after '-' needs parentheses
        (left, lc, _), (right, rc, kind) = _generate(rng, depth - 1), _generate(rng, depth - 1)
        sign = rng.choice([1, -1])
        if kind == "sum" and (sign == -1 or rng.random() < 0.3):
            right = f"({right})"
        coefs = dict(lc)
        for name, coef in rc.items():
            coefs[name] = coefs.get(name, Fraction(0)) + sign * coef
        return f"{left}{rng.choice(['', ' ', '  '])}{'+' if sign == 1 else '-'}{rng.choice(['', ' '])}{right}", coefs, "sum"
    inner, coefs, kind = _generate(rng, depth - 1)
    wrapped = f"({inner})" if kind == "sum" or rng.random() < 0.15 else inner
    if choice == 2:
        return f"({inner})", coefs, "atom"
    if choice == 3:
        return f"-{wrapped}", {n: -c for n, c in coefs.items()}, "neg"
    number, value = _number(rng)
    if choice in (4, 5):
        text = f"{number}*{wrapped}" if choice == 4 else f"{wrapped} * {number}"
        return text, {n: c * value for n, c in coefs.items()}, "product"
    return f"{wrapped}/{number}", {n: c / value for n, c in coefs.items()}, "product"


def test_random_expressions_match_independent_coefficients():
    rng = random.Random(20240611)
    checked = cancelled = 0
    for _ in range(400):
        text, coefs, _ = _generate(rng, rng.randint(0, 4))
        expected = {name: float(coef) for name, coef in coefs.items() if coef != 0}
        if not expected:
            with pytest.raises(ViscnnError, match="cancels to nothing"):
                parse_expression(text)
            cancelled += 1
            continue
        expression = parse_expression(text)
        assert expression.terms == pytest.approx(expected, rel=1e-12), text
        assert set(expression.terms) == set(expected), text
        again = parse_expression(str(expression))
        assert again.terms == pytest.approx(expression.terms, rel=1e-15), (text, str(expression))
        values = {name: float(i + 1) for i, name in enumerate(SET_NAMES)}
        assert expression.combine(values) == pytest.approx(sum(c * values[n] for n, c in expected.items()), abs=1e-9)
        checked += 1
    assert checked > 300


def test_an_unquoted_name_with_a_dash_gets_a_hint_to_quote_it():
    names = ["t-shirt_top", "trouser", "overall", "243-bull_mastiff", "ankle boot"]
    for text, bare in [("t-shirt_top - overall", "'t-shirt_top'"), ("overall - t-shirt_top", "'t-shirt_top'"),
                       ("shirt_top", None), ("'t-shirt_top' - t", None)]:
        with pytest.raises(ViscnnError) as info:
            parse_expression(text, names)
        hinted = "must be quoted" in str(info.value)
        assert hinted == (bare is not None), str(info.value)
        if bare:
            assert str(info.value).endswith(f"set names with '-' or other signs must be quoted: write {bare}")


def test_known_names_in_a_message_stay_on_one_line():
    with pytest.raises(ViscnnError) as info:
        parse_expression("zebra", ["a\nb", "overall"])
    assert "\n" not in str(info.value) and "a b" in str(info.value)
