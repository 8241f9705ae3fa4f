"""Image-set expressions: linear combinations of image sets such as ``tiger - overall``.

A small tokenizer and recursive-descent parser (no eval).  Grammar::

    expression = sum END
    sum        = term { ("+" | "-") term }
    term       = factor { ("*" | "/") factor }
    factor     = { "+" | "-" } ( NUMBER | NAME | "(" sum ")" )
    NUMBER     = ( DIGITS [ "." [ DIGITS ] ] | "." DIGITS ) [ ("e" | "E") [ "+" | "-" ] DIGITS ]
    NAME       = [A-Za-z_][A-Za-z0-9_.]*  |  "'" ... "'"  |  '"' ... '"'  |  "`" ... "`"

Linear only: a product needs a number on one side, a divisor is a non-zero number, numbers are never
added to sets.  Arithmetic is exact (fractions) until the final floats.
"""
import difflib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from fractions import Fraction
from typing import NamedTuple, NoReturn, TypeVar

from viscnn.errors import ViscnnError

T = TypeVar("T")
MAX_LENGTH = 1000
MAX_DEPTH = 50
_BARE = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*")
_NUMBER = re.compile(r"(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?", re.ASCII)
_INDEX_PREFIX = re.compile(r"^\d+[-_ ]")
_QUOTES = "'\"`"


class _Tok(NamedTuple):
    kind: str  # "num", "name", one of "+-*/()", or "end"
    text: str
    pos: int


_Val = dict[str, Fraction]  # set name -> coefficient; a plain number c is {_NUM: c}
_NUM = ""  # never a set name: empty quoted names are rejected


def _one_line(s: str, limit: int = 0) -> str:  # messages are one line: whitespace as spaces, cut to limit
    s = re.sub(r"\s", " ", s)
    return s[:limit] + "..." if limit and len(s) > limit else s


class _Parser:
    def __init__(self, text: str) -> None:
        self.text, self.i, self.depth = text, 0, 0
        self.toks = self._tokenize()

    def fail(self, pos: int, message: str) -> NoReturn:
        excerpt = _one_line(self.text[pos:], 12).rstrip()
        where = repr(excerpt) if excerpt else "end of input"
        raise ViscnnError(f"cannot parse image-set expression at column {pos + 1} ({where}): {message}")

    def _tokenize(self) -> list[_Tok]:
        text, pos, toks = self.text, 0, []
        while pos < len(text):
            ch = text[pos]
            if ch.isspace():
                pos += 1
            elif ch in "+-*/()":
                toks.append(_Tok(ch, ch, pos))
                pos += 1
            elif ch in _QUOTES:
                end = text.find(ch, pos + 1)
                if end <= pos + 1:
                    self.fail(pos, f"unterminated quote: the set name has no closing {ch}" if end < 0 else "empty quoted set name")
                toks.append(_Tok("name", text[pos + 1:end], pos))
                pos = end + 1
            elif m := (_NUMBER.match(text, pos) if ch in "0123456789." else _BARE.match(text, pos)):
                toks.append(_Tok("num" if m.re is _NUMBER else "name", m.group(), pos))
                pos = m.end()
            else:
                self.fail(pos, "powers ('^') are not allowed: an image-set expression is linear" if ch == "^"
                          else f"unexpected character {ch!r} (quote set names that contain it)")
        toks.append(_Tok("end", "", len(text)))
        return toks

    def peek(self) -> _Tok:
        return self.toks[self.i]

    def take(self) -> _Tok:
        self.i += 1
        return self.toks[self.i - 1]

    def after(self) -> str:
        return f"after {self.toks[self.i - 1].text!r}" if self.i else "at the start"

    def parse(self) -> _Val:
        value = self.sum()
        if self.peek().kind == ")":
            self.fail(self.peek().pos, "unbalanced parentheses: this ')' has no matching '('")
        return value

    def sum(self) -> _Val:
        left = self.term()
        while self.peek().kind in ("+", "-"):
            op = self.take()
            right = self.term()
            if (_NUM in left) != (_NUM in right):
                glued = op.kind == "-" and op.pos > 0 and not self.text[op.pos - 1].isspace()
                hint = " (quote set names containing '-', e.g. '243-bull_mastiff')" if glued else ""
                self.fail(op.pos, f"cannot add or subtract a number and an image set{hint}")
            sign = 1 if op.kind == "+" else -1
            left = dict(left)
            for name, coef in right.items():
                left[name] = left.get(name, Fraction(0)) + sign * coef
        return left

    def term(self) -> _Val:
        left = self.factor()
        while True:
            tok = self.peek()
            if tok.kind in ("name", "num", "("):
                if _NUM in left and tok.kind != "num":
                    self.fail(tok.pos, "put '*' between a number and what it multiplies (write '3*a', not '3 a')")
                self.fail(tok.pos, f"expected an operator (+ - * /) or the end {self.after()}")
            if tok.kind not in ("*", "/"):
                return left
            self.take()
            right = self.factor()
            if tok.kind == "/":
                if _NUM not in right:
                    self.fail(tok.pos, "cannot divide by an image set: an image-set expression is linear")
                if right[_NUM] == 0:
                    self.fail(tok.pos, "division by zero")
                left = _scale(left, 1 / right[_NUM])
            elif _NUM in left or _NUM in right:
                left = _scale(right, left[_NUM]) if _NUM in left else _scale(left, right[_NUM])
            else:
                self.fail(tok.pos, "cannot multiply two image sets: an image-set expression is linear")

    def factor(self) -> _Val:
        sign = 1
        while self.peek().kind in ("+", "-"):
            sign = -sign if self.take().kind == "-" else sign
        if self.peek().kind not in ("num", "name", "("):
            self.fail(self.peek().pos, f"expected a set name, a number or '(' {self.after()}")
        tok = self.take()
        if tok.kind == "num":
            return {_NUM: sign * self.number(tok)}
        if tok.kind == "name":
            return {tok.text: Fraction(sign)}
        if self.depth >= MAX_DEPTH:
            self.fail(tok.pos, f"parentheses are nested more than {MAX_DEPTH} deep")
        self.depth += 1
        value = self.sum()
        self.depth -= 1
        if self.peek().kind != ")":
            self.fail(self.peek().pos, f"unbalanced parentheses: expected ')' to close the '(' at column {tok.pos + 1}")
        self.take()
        return _scale(value, Fraction(sign))

    def number(self, tok: _Tok) -> Fraction:
        if float(_NUMBER.match(tok.text).group(1)) == 0:  # type: ignore[union-attr]
            return Fraction(0)  # mantissa 0: skip Fraction's 10**exponent for '0e99999999'
        as_float = float(tok.text)
        if as_float == 0 or as_float == float("inf"):
            self.fail(tok.pos, f"number {tok.text!r} is out of range (too {'small' if as_float == 0 else 'large'})")
        return Fraction(tok.text)


def _scale(value: _Val, factor: Fraction) -> _Val:
    return {name: coef * factor for name, coef in value.items()}


def _resolve(name: str, names: list[str], text: str) -> str:
    if name in names:
        return name
    matches = [n for n in names if _INDEX_PREFIX.sub("", n) == name]
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise ViscnnError(f"ambiguous image set {name!r} in {_one_line(text, 60)!r}: it could be {', '.join(matches)}")
    known = _one_line(", ".join(names[:10]) + (f", ... ({len(names)} in all)" if len(names) > 10 else ""))
    # 't-shirt_top' unquoted reads as 't - shirt_top': a known name that needs quotes, written bare around this part
    bare = re.sub(r"'[^']*'|\"[^\"]*\"|`[^`]*`", " ", text)  # the text outside quotes
    unquoted = [n for n in names if not _BARE.fullmatch(n) and name in re.split(r"[^A-Za-z0-9_.]+", n) and n in bare]
    spellings = {n: n for n in names} | {_INDEX_PREFIX.sub("", n): n for n in names if _INDEX_PREFIX.match(n)}
    close = [spellings[c] for c in difflib.get_close_matches(name, list(spellings), n=1)]
    hint = f"; did you mean {close[0]!r}?" if close else ""
    if unquoted:
        hint = f"; set names with '-' or other signs must be quoted: write {_one_line(_quote(unquoted[0]), 60)}"
    raise ViscnnError(f"unknown image set {_one_line(name, 60)!r} in {_one_line(text, 60)!r} (known: {known or 'none'}){hint}")


def _quote(name: str) -> str:
    quote = next((q for q in _QUOTES if q not in name), "`")
    return name if _BARE.fullmatch(name) else f"{quote}{name}{quote}"


@dataclass(frozen=True)
class Expression:
    """A parsed image-set expression: each set's coefficient (full set names, first-appearance order)."""

    terms: dict[str, float]
    text: str

    def __hash__(self) -> int:
        return hash((tuple(self.terms.items()), self.text))

    def combine(self, values: Mapping[str, T]) -> T:
        """``sum(coef * values[name])`` for floats, numpy arrays, torch tensors or anything with ``*`` and ``+``."""
        total = None
        for name, coef in self.terms.items():
            if name not in values:
                raise ViscnnError(f"no values for image set {name!r} in {_one_line(self.text, 60)!r}")
            part = values[name] * coef  # type: ignore[operator]
            total = part if total is None else total + part
        return total  # type: ignore[return-value]

    def __str__(self) -> str:
        out: list[str] = []
        for name, coef in self.terms.items():
            size = abs(coef)
            body = _quote(name) if size == 1 else f"{int(size) if size.is_integer() and size < 1e16 else size!r}*{_quote(name)}"
            sign = "-" if coef < 0 else "+"
            out.append(f" {sign} {body}" if out else body if sign == "+" else f"-{body}")
        return "".join(out)


def parse_expression(text: str, names: Iterable[str] | None = None) -> Expression:
    """Parse ``text`` (e.g. ``'collie + shepherd - 2*overall'``) into an :class:`Expression`.

    With ``names`` (the available image sets) every set name must be one of them, or equal one with its
    leading index prefix removed when that is unique ('bull_mastiff' -> '243-bull_mastiff').
    Any fault raises a one-line :class:`ViscnnError`.
    """
    if not text or not text.strip():
        raise ViscnnError("empty image-set expression: give a set such as 'tiger' or a combination such as 'tiger - overall'")
    if len(text) > MAX_LENGTH:
        raise ViscnnError(f"image-set expression is too long ({len(text)} characters; at most {MAX_LENGTH})")
    value = _Parser(text).parse()
    if _NUM in value:
        raise ViscnnError(f"image-set expression {_one_line(text, 60)!r} has no image set in it, only a number")
    available = None if names is None else list(names)
    exact: dict[str, Fraction] = {}
    for name, coef in value.items():
        full = name if available is None else _resolve(name, available, text)
        exact[full] = exact.get(full, Fraction(0)) + coef
    terms: dict[str, float] = {}
    for name, coef in exact.items():
        try:
            as_float = float(coef)
        except OverflowError:
            raise ViscnnError(f"coefficient of {name!r} in {_one_line(text, 60)!r} is too large") from None
        if as_float != 0:
            terms[name] = as_float
    if not terms:
        raise ViscnnError(f"image-set expression {_one_line(text, 60)!r} cancels to nothing (every coefficient is zero)")
    return Expression(terms, text)
