"""A restricted SQL expression language: one parse, two back ends that agree exactly.

`parse` turns text into a typed AST (against a frame schema). `to_python` compiles the AST into a
plain-Python closure over a row dict (the record path); `to_polars_source` renders it as Polars code
(the batch path, and exported scripts). Anything outside the grammar is refused with a clear error.

Grammar (keywords case-insensitive, lowest precedence first)::

    expr      := or
    or        := and (OR and)*
    and       := not (AND not)*
    not       := NOT not | predicate
    predicate := concat [cmp concat | IS [NOT] NULL | [NOT] IN (expr, …) | [NOT] BETWEEN concat AND concat]
    cmp       := = | == | <> | != | < | <= | > | >=
    concat    := sum (|| sum)*
    sum       := product ((+ | -) product)*
    product   := unary ((* | / | %) unary)*
    unary     := (- | +) unary | primary
    primary   := number | 'string' | TRUE | FALSE | NULL | column | "quoted column" | (expr)
               | CASE [expr] WHEN … THEN … [ELSE …] END | CAST(expr AS type) | function(expr, …)

Functions: COALESCE, NULLIF, ABS, ROUND (to an integral value, half to even), FLOOR,
CEIL/CEILING, SQRT, LN, EXP, LOWER, UPPER, TRIM (spaces), LENGTH. Types: BIGINT/INT/INTEGER,
DOUBLE/FLOAT/REAL, VARCHAR/TEXT/STRING, BOOLEAN/BOOL, DATE, TIMESTAMP/DATETIME.

Semantics (both back ends): SQL nulls (arithmetic and comparisons with null are null; AND/OR are
three-valued; a CASE condition that is null counts as false). `/` is true division and always float64
(x/0 is ±inf, 0/0 NaN). `%` takes integers, has the sign of the dividend (SQL's MOD), and x % 0 is null.
Integer arithmetic
wraps at 64 bits. Mixing int64 and float64 compares and computes in float64. Float comparisons order NaN
above every number and equal to itself (Polars' total order).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from tideml.wrangle.transforms.cast import cast_function, cast_source, castable
from tideml.wrangle.types import INT64_MAX, DType, wrap_int64

__all__ = ["Expression", "SqlError", "parse"]

Fn = Callable[[Mapping[str, Any]], Any]
NULL = "null"  # the type of the NULL literal, before context gives it one


class SqlError(ValueError):
    """The text is not in the grammar, or does not type-check; `position` is a character offset."""

    def __init__(self, message: str, position: int | None = None) -> None:
        self.position = position
        super().__init__(message if position is None else f"{message} (at character {position})")


# -- tokens ----------------------------------------------------------------------------------------
_TOKEN = re.compile(
    r"""\s*(?:
      (?P<num>(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)
    | (?P<str>'(?:[^']|'')*')
    | (?P<qid>"(?:[^"]|"")+")
    | (?P<id>[A-Za-z_][A-Za-z0-9_]*)
    | (?P<op><>|!=|<=|>=|==|\|\||[-+*/%=<>(),])
    )""",
    re.VERBOSE,
)
_KEYWORDS = frozenset(
    {
        *("AND", "OR", "NOT", "CASE", "WHEN", "THEN", "ELSE", "END"),
        *("IS", "NULL", "TRUE", "FALSE", "IN", "BETWEEN", "CAST", "AS"),
    }
)
_TYPES: dict[str, DType] = {
    "BIGINT": "int64",
    "INT": "int64",
    "INTEGER": "int64",
    "DOUBLE": "float64",
    "FLOAT": "float64",
    "REAL": "float64",
    "VARCHAR": "string",
    "TEXT": "string",
    "STRING": "string",
    "BOOLEAN": "bool",
    "BOOL": "bool",
    "DATE": "date",
    "TIMESTAMP": "datetime",
    "DATETIME": "datetime",
}


@dataclass
class Token:
    """A lexical token with its character position."""

    kind: str  # num, str, id, kw, op, end
    text: str
    pos: int


def _tokenize(text: str) -> list[Token]:
    tokens, pos = [], 0
    while True:
        while pos < len(text) and text[pos].isspace():
            pos += 1
        if pos >= len(text):
            tokens.append(Token("end", "", pos))
            return tokens
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            raise SqlError(f"unexpected character {text[pos]!r}", pos)
        kind = m.lastgroup or ""
        value = m.group(kind)
        start = m.start(kind)
        if kind == "id" and value.upper() in _KEYWORDS:
            tokens.append(Token("kw", value.upper(), start))
        elif kind == "qid":
            tokens.append(Token("id", value[1:-1].replace('""', '"'), start))
        else:
            tokens.append(Token(kind, value, start))
        pos = m.end()


# -- AST -------------------------------------------------------------------------------------------
@dataclass
class Node:
    """A typed expression node; `dtype` is filled by the parser's type check."""

    pos: int
    dtype: str = field(default=NULL, init=False)


@dataclass
class Lit(Node):
    """A literal: int, float, str, bool or None (NULL)."""

    value: Any


@dataclass
class Col(Node):
    """A column reference."""

    name: str


@dataclass
class Unary(Node):
    """Negation (`-`) or logical NOT."""

    op: str  # "-" or "NOT"
    arg: Node


@dataclass
class Binary(Node):
    """An arithmetic, concatenation, comparison or logical operator."""

    op: str  # + - * / % || = <> < <= > >= AND OR
    left: Node
    right: Node


@dataclass
class IsNull(Node):
    """`IS [NOT] NULL`."""

    arg: Node
    negated: bool


@dataclass
class Case(Node):
    """`CASE WHEN … THEN … [ELSE …] END` (a simple CASE is rewritten to this form)."""

    whens: list[tuple[Node, Node]]
    default: Node | None


@dataclass
class Func(Node):
    """A function call."""

    name: str
    args: list[Node]


@dataclass
class Cast(Node):
    """`CAST(expr AS type)`."""

    arg: Node
    target: DType


# -- parser ----------------------------------------------------------------------------------------
class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = _tokenize(text)
        self.i = 0

    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def take(self) -> Token:
        t = self.tokens[self.i]
        self.i += 1
        return t

    def accept(self, kind: str, text: str | None = None) -> Token | None:
        t = self.tok
        if t.kind == kind and (text is None or t.text == text):
            return self.take()
        return None

    def expect(self, kind: str, text: str) -> Token:
        t = self.accept(kind, text)
        if t is None:
            found = self.tok.text or "the end"
            raise SqlError(f"expected {text!r}, found {found!r}", self.tok.pos)
        return t

    def parse(self) -> Node:
        node = self.or_()
        if self.tok.kind != "end":
            raise SqlError(f"unexpected {self.tok.text!r}", self.tok.pos)
        return node

    def or_(self) -> Node:
        node = self.and_()
        while t := self.accept("kw", "OR"):
            node = Binary(t.pos, "OR", node, self.and_())
        return node

    def and_(self) -> Node:
        node = self.not_()
        while t := self.accept("kw", "AND"):
            node = Binary(t.pos, "AND", node, self.not_())
        return node

    def not_(self) -> Node:
        if t := self.accept("kw", "NOT"):
            return Unary(t.pos, "NOT", self.not_())
        return self.predicate()

    def predicate(self) -> Node:
        left = self.concat()
        t = self.tok
        if t.kind == "op" and t.text in ("=", "==", "<>", "!=", "<", "<=", ">", ">="):
            self.take()
            op = {"==": "=", "!=": "<>"}.get(t.text, t.text)
            return Binary(t.pos, op, left, self.concat())
        if self.accept("kw", "IS"):
            negated = self.accept("kw", "NOT") is not None
            self.expect("kw", "NULL")
            return IsNull(t.pos, left, negated)
        negated = self.accept("kw", "NOT") is not None
        if self.accept("kw", "IN"):
            self.expect("op", "(")
            items = [self.or_()]
            while self.accept("op", ","):
                items.append(self.or_())
            self.expect("op", ")")
            node: Node = Binary(t.pos, "=", left, items[0])
            for item in items[1:]:
                node = Binary(t.pos, "OR", node, Binary(t.pos, "=", left, item))
            return Unary(t.pos, "NOT", node) if negated else node
        if self.accept("kw", "BETWEEN"):
            low = self.concat()
            self.expect("kw", "AND")
            high = self.concat()
            node = Binary(t.pos, "AND", Binary(t.pos, ">=", left, low), Binary(t.pos, "<=", left, high))
            return Unary(t.pos, "NOT", node) if negated else node
        if negated:
            raise SqlError("expected IN or BETWEEN after NOT", self.tok.pos)
        return left

    def concat(self) -> Node:
        node = self.sum()
        while t := self.accept("op", "||"):
            node = Binary(t.pos, "||", node, self.sum())
        return node

    def sum(self) -> Node:
        node = self.product()
        while self.tok.kind == "op" and self.tok.text in ("+", "-"):
            t = self.take()
            node = Binary(t.pos, t.text, node, self.product())
        return node

    def product(self) -> Node:
        node = self.unary()
        while self.tok.kind == "op" and self.tok.text in ("*", "/", "%"):
            t = self.take()
            node = Binary(t.pos, t.text, node, self.unary())
        return node

    def unary(self) -> Node:
        if t := self.accept("op", "-"):
            arg = self.unary()
            if (
                isinstance(arg, Lit)
                and isinstance(arg.value, int | float)
                and not isinstance(arg.value, bool)
            ):
                return Lit(t.pos, -arg.value)
            return Unary(t.pos, "-", arg)
        if self.accept("op", "+"):
            return self.unary()
        return self.primary()

    def primary(self) -> Node:
        t = self.take()
        if t.kind == "num":
            if re.fullmatch(r"[0-9]+", t.text):
                number = int(t.text)
                if number > INT64_MAX + 1:
                    raise SqlError("integer literal out of int64 range", t.pos)
                return Lit(t.pos, number)
            return Lit(t.pos, float(t.text))
        if t.kind == "str":
            return Lit(t.pos, t.text[1:-1].replace("''", "'"))
        if t.kind == "kw" and t.text in ("TRUE", "FALSE"):
            return Lit(t.pos, t.text == "TRUE")
        if t.kind == "kw" and t.text == "NULL":
            return Lit(t.pos, None)
        if t.kind == "op" and t.text == "(":
            node = self.or_()
            self.expect("op", ")")
            return node
        if t.kind == "kw" and t.text == "CASE":
            return self.case(t)
        if t.kind == "kw" and t.text == "CAST":
            self.expect("op", "(")
            arg = self.or_()
            self.expect("kw", "AS")
            name = self.take()
            target = _TYPES.get(name.text.upper()) if name.kind == "id" else None
            if target is None:
                raise SqlError(f"unknown type {name.text!r}; use one of {', '.join(_TYPES)}", name.pos)
            self.expect("op", ")")
            return Cast(t.pos, arg, target)
        if t.kind == "id":
            if self.accept("op", "("):
                args = [] if self.tok.kind == "op" and self.tok.text == ")" else [self.or_()]
                while self.accept("op", ","):
                    args.append(self.or_())
                self.expect("op", ")")
                return Func(t.pos, t.text.upper(), args)
            return Col(t.pos, t.text)
        raise SqlError(f"unexpected {t.text or 'end of expression'!r}", t.pos)

    def case(self, start: Token) -> Node:
        subject = None if self.tok.kind == "kw" and self.tok.text in ("WHEN", "END") else self.or_()
        whens = []
        while w := self.accept("kw", "WHEN"):
            cond = self.or_()
            if subject is not None:
                cond = Binary(w.pos, "=", subject, cond)
            self.expect("kw", "THEN")
            whens.append((cond, self.or_()))
        if not whens:
            raise SqlError("CASE needs at least one WHEN", self.tok.pos)
        default = self.or_() if self.accept("kw", "ELSE") else None
        self.expect("kw", "END")
        return Case(start.pos, whens, default)


# -- types -----------------------------------------------------------------------------------------
_FUNCTIONS = {
    "COALESCE": (1, 99),
    "NULLIF": (2, 2),
    "ABS": (1, 1),
    "ROUND": (1, 1),
    "FLOOR": (1, 1),
    "CEIL": (1, 1),
    "CEILING": (1, 1),
    "SQRT": (1, 1),
    "LN": (1, 1),
    "EXP": (1, 1),
    "LOWER": (1, 1),
    "UPPER": (1, 1),
    "TRIM": (1, 1),
    "LENGTH": (1, 1),
}
_NUMERIC = ("int64", "float64")


def _unify(types: list[str], pos: int, what: str) -> str:
    known = {t for t in types if t != NULL}
    if not known:
        return NULL
    if len(known) == 1:
        return known.pop()
    if known <= set(_NUMERIC):
        return "float64"
    raise SqlError(f"wrong type: {what} mixes types {', '.join(sorted(known))}", pos)


def _need(node: Node, allowed: tuple[str, ...], what: str) -> None:
    if node.dtype != NULL and node.dtype not in allowed:
        column = f" (column {node.name!r})" if isinstance(node, Col) else ""
        raise SqlError(f"wrong type: {what} needs {' or '.join(allowed)}, got {node.dtype}{column}", node.pos)


def _check(node: Node, schema: Mapping[str, DType]) -> None:
    """Fill `dtype` on every node, bottom-up; raise SqlError on a type error or unknown column."""
    if isinstance(node, Lit):
        v = node.value
        node.dtype = (
            NULL
            if v is None
            else "bool"
            if isinstance(v, bool)
            else "int64"
            if isinstance(v, int)
            else "float64"
            if isinstance(v, float)
            else "string"
        )
        if node.dtype == "int64" and v > INT64_MAX:
            raise SqlError("integer literal out of int64 range", node.pos)
    elif isinstance(node, Col):
        if node.name not in schema:
            raise SqlError(f"unknown column {node.name!r}", node.pos)
        node.dtype = schema[node.name]
    elif isinstance(node, Unary):
        _check(node.arg, schema)
        if node.op == "NOT":
            _need(node.arg, ("bool",), "NOT")
            node.dtype = "bool"
        else:
            _need(node.arg, _NUMERIC, "unary -")
            node.dtype = node.arg.dtype if node.arg.dtype != NULL else "int64"
    elif isinstance(node, Binary):
        _check(node.left, schema)
        _check(node.right, schema)
        op, lt, rt = node.op, node.left.dtype, node.right.dtype
        if op in ("AND", "OR"):
            _need(node.left, ("bool",), op)
            _need(node.right, ("bool",), op)
            node.dtype = "bool"
        elif op in ("+", "-", "*"):
            _need(node.left, _NUMERIC, op)
            _need(node.right, _NUMERIC, op)
            node.dtype = "int64" if {lt, rt} <= {"int64", NULL} else "float64"
        elif op == "/":
            _need(node.left, _NUMERIC, op)
            _need(node.right, _NUMERIC, op)
            node.dtype = "float64"
        elif op == "%":
            _need(node.left, ("int64",), "%")
            _need(node.right, ("int64",), "%")
            node.dtype = "int64"
        elif op == "||":
            _need(node.left, ("string",), "||")
            _need(node.right, ("string",), "||")
            node.dtype = "string"
        else:
            _unify([lt, rt], node.pos, f"comparison {op}")
            node.dtype = "bool"
    elif isinstance(node, IsNull):
        _check(node.arg, schema)
        node.dtype = "bool"
    elif isinstance(node, Case):
        for cond, value in node.whens:
            _check(cond, schema)
            _need(cond, ("bool",), "WHEN")
            _check(value, schema)
        if node.default is not None:
            _check(node.default, schema)
        results = [v.dtype for _, v in node.whens] + ([node.default.dtype] if node.default else [])
        node.dtype = _unify(results, node.pos, "CASE")
    elif isinstance(node, Cast):
        _check(node.arg, schema)
        src = node.arg.dtype
        if src != NULL and not castable(src, node.target):  # type: ignore[arg-type]
            raise SqlError(f"cannot CAST {src} to {node.target}", node.pos)
        node.dtype = node.target
    elif isinstance(node, Func):
        if node.name not in _FUNCTIONS:
            raise SqlError(f"unknown function {node.name}; available: {', '.join(_FUNCTIONS)}", node.pos)
        low, high = _FUNCTIONS[node.name]
        if not low <= len(node.args) <= high:
            raise SqlError(
                f"{node.name} takes {low if low == high else f'{low} or more'} argument(s)", node.pos
            )
        for arg in node.args:
            _check(arg, schema)
        a = node.args[0]
        if node.name == "COALESCE":
            node.dtype = _unify([x.dtype for x in node.args], node.pos, "COALESCE")
        elif node.name == "NULLIF":
            _unify([a.dtype, node.args[1].dtype], node.pos, "NULLIF")
            node.dtype = a.dtype
        elif node.name in ("ABS", "ROUND", "FLOOR", "CEIL", "CEILING"):
            _need(a, _NUMERIC, node.name)
            node.dtype = a.dtype if a.dtype != NULL else "float64"
        elif node.name in ("SQRT", "LN", "EXP"):
            _need(a, _NUMERIC, node.name)
            node.dtype = "float64"
        elif node.name == "LENGTH":
            _need(a, ("string",), node.name)
            node.dtype = "int64"
        else:
            _need(a, ("string",), node.name)
            node.dtype = "string"
    else:  # pragma: no cover - every node class is handled above
        raise SqlError(f"unsupported node {type(node).__name__}", node.pos)


# -- Python back end -------------------------------------------------------------------------------
def _fdiv(a: float, b: float) -> float:
    try:
        return a / b
    except ZeroDivisionError:
        if a != a or a == 0.0:
            return math.nan
        return math.copysign(math.inf, a) * math.copysign(1.0, b)


def _fcmp(a: float, b: float) -> int:
    """Polars' total order on floats: NaN equals NaN and is above everything else."""
    if a != a:
        return 0 if b != b else 1
    if b != b:
        return -1
    return (a > b) - (a < b)


def _round(x: float) -> float:
    """Half to even, as Python's round() and Polars SQL's ROUND; the sign of zero is kept."""
    return math.copysign(float(round(x)), x) if math.isfinite(x) else x


def _mod(a: int, b: int) -> int | None:
    """SQL's MOD: the remainder has the sign of the dividend; x % 0 is null."""
    if b == 0:
        return None
    r = a % b
    if r and (r < 0) != (a < 0):
        r -= b
    return r


def _floor(x: float) -> float:
    return float(math.floor(x)) if math.isfinite(x) else x


def _ceil(x: float) -> float:
    return float(math.ceil(x)) if math.isfinite(x) else x


def _sqrt(x: float) -> float:
    return math.nan if x < 0 else math.sqrt(x)


def _ln(x: float) -> float:
    if x != x or x == math.inf:
        return x
    if x == 0.0:
        return -math.inf
    return math.nan if x < 0 else math.log(x)


def _exp(x: float) -> float:
    try:
        return math.exp(x)
    except OverflowError:
        return math.inf


_MATH: dict[str, Callable[[float], float]] = {
    "ROUND": _round,
    "FLOOR": _floor,
    "CEIL": _ceil,
    "CEILING": _ceil,
    "SQRT": _sqrt,
    "LN": _ln,
    "EXP": _exp,
}
_CMP: dict[str, Callable[[int], bool]] = {
    "=": lambda c: c == 0,
    "<>": lambda c: c != 0,
    "<": lambda c: c < 0,
    "<=": lambda c: c <= 0,
    ">": lambda c: c > 0,
    ">=": lambda c: c >= 0,
}


def _as(dtype: str, node: Node) -> Fn:
    """The node's closure, converted to `dtype` (int64 → float64 is the only widening)."""
    fn = _py(node)
    if node.dtype == "int64" and dtype == "float64":

        def widen(row: Mapping[str, Any]) -> Any:
            v = fn(row)
            return None if v is None else float(v)

        return widen
    return fn


def _py(node: Node) -> Fn:
    if isinstance(node, Lit):
        value = node.value
        return lambda row: value
    if isinstance(node, Col):
        name = node.name
        return lambda row: row[name]
    if isinstance(node, Unary):
        arg = _py(node.arg)
        if node.op == "NOT":
            return lambda row: None if (v := arg(row)) is None else not v
        if node.dtype == "int64":
            return lambda row: None if (v := arg(row)) is None else wrap_int64(-v)
        return lambda row: None if (v := arg(row)) is None else -v
    if isinstance(node, Binary):
        return _py_binary(node)
    if isinstance(node, IsNull):
        arg = _py(node.arg)
        if node.negated:
            return lambda row: arg(row) is not None
        return lambda row: arg(row) is None
    if isinstance(node, Case):
        whens = [(_py(c), _as(node.dtype, v)) for c, v in node.whens]
        default = _as(node.dtype, node.default) if node.default is not None else (lambda row: None)

        def case(row: Mapping[str, Any]) -> Any:
            for cond, value in whens:
                if cond(row) is True:
                    return value(row)
            return default(row)

        return case
    if isinstance(node, Cast):
        arg = _py(node.arg)
        if node.arg.dtype == NULL:
            return lambda row: None
        convert = cast_function(node.arg.dtype, node.target)  # type: ignore[arg-type]
        return lambda row: None if (v := arg(row)) is None else convert(v)
    assert isinstance(node, Func)
    return _py_func(node)


def _py_binary(node: Binary) -> Fn:
    op = node.op
    if op in ("AND", "OR"):
        left, right = _py(node.left), _py(node.right)
        if op == "AND":

            def and_(row: Mapping[str, Any]) -> Any:
                a, b = left(row), right(row)
                if a is False or b is False:
                    return False
                return None if a is None or b is None else True

            return and_

        def or_(row: Mapping[str, Any]) -> Any:
            a, b = left(row), right(row)
            if a is True or b is True:
                return True
            return None if a is None or b is None else False

        return or_
    if op in _CMP:
        common = _unify([node.left.dtype, node.right.dtype], node.pos, "comparison")
        left, right = _as(common, node.left), _as(common, node.right)
        test = _CMP[op]
        if common == "float64":

            def fcompare(row: Mapping[str, Any]) -> Any:
                a, b = left(row), right(row)
                return None if a is None or b is None else test(_fcmp(a, b))

            return fcompare

        def compare(row: Mapping[str, Any]) -> Any:
            a, b = left(row), right(row)
            return None if a is None or b is None else test((a > b) - (a < b))

        return compare
    left, right = _as(node.dtype, node.left), _as(node.dtype, node.right)
    if op == "/":
        left, right = _as("float64", node.left), _as("float64", node.right)
        return lambda row: None if (a := left(row)) is None or (b := right(row)) is None else _fdiv(a, b)
    if op == "%":
        return lambda row: None if (a := left(row)) is None or (b := right(row)) is None else _mod(a, b)
    if op == "||":
        return lambda row: None if (a := left(row)) is None or (b := right(row)) is None else a + b
    arith: Callable[[Any, Any], Any] = {
        "+": lambda a, b: a + b,
        "-": lambda a, b: a - b,
        "*": lambda a, b: a * b,
    }[op]
    if node.dtype == "int64":
        return lambda row: (
            None if (a := left(row)) is None or (b := right(row)) is None else wrap_int64(arith(a, b))
        )
    return lambda row: None if (a := left(row)) is None or (b := right(row)) is None else arith(a, b)


def _py_func(node: Func) -> Fn:
    name = node.name
    if name == "COALESCE":
        args = [_as(node.dtype, a) for a in node.args]

        def coalesce(row: Mapping[str, Any]) -> Any:
            for arg in args:
                v = arg(row)
                if v is not None:
                    return v
            return None

        return coalesce
    if name == "NULLIF":
        equal = _py(Binary(node.pos, "=", node.args[0], node.args[1]))
        first = _py(node.args[0])
        return lambda row: None if equal(row) is True else first(row)
    arg = _py(node.args[0])
    dtype = node.args[0].dtype
    if name == "ABS":
        if dtype == "int64":
            return lambda row: None if (v := arg(row)) is None else wrap_int64(abs(v))
        return lambda row: None if (v := arg(row)) is None else abs(v)
    if name in _MATH:
        if dtype == "int64" and name in ("ROUND", "FLOOR", "CEIL", "CEILING"):
            return arg
        fn = _MATH[name]
        return lambda row: None if (v := arg(row)) is None else fn(float(v))
    if name == "LENGTH":
        return lambda row: None if (v := arg(row)) is None else len(v)
    method: Callable[[str], str] = {
        "LOWER": str.lower,
        "UPPER": str.upper,
        "TRIM": lambda s: s.strip(" "),
    }[name]
    return lambda row: None if (v := arg(row)) is None else method(v)


# -- Polars back end -------------------------------------------------------------------------------
_PDT = {
    "int64": "pl.Int64",
    "float64": "pl.Float64",
    "string": "pl.String",
    "bool": "pl.Boolean",
    "date": "pl.Date",
    "datetime": "pl.Datetime('us')",
}


def _lit_source(value: Any, dtype: str) -> str:
    if value is None:
        return f"pl.lit(None, dtype={_PDT[dtype]})"
    if isinstance(value, float):
        text = "float('nan')" if value != value else repr(value)
        text = {"inf": "float('inf')", "-inf": "float('-inf')"}.get(text, text)
        return f"pl.lit({text}, dtype=pl.Float64)"
    return f"pl.lit({value!r}, dtype={_PDT[dtype]})"


def _src_as(dtype: str, node: Node) -> str:
    """Source of the node, typed as `dtype` (a NULL literal takes the type; int64 widens to float64)."""
    if node.dtype == NULL:
        return f"pl.lit(None, dtype={_PDT[dtype]})"
    src = _src(node)
    if node.dtype == "int64" and dtype == "float64":
        return f"{src}.cast(pl.Float64)"
    return src


def _spread(constant: str) -> str:
    """A constant divisor as a column of its value. Polars divides a column by a scalar as a product
    with the scalar's reciprocal, an ulp off IEEE division (3.0 / -2.5 = -1.2000000000000002), and only
    for frames of more than one row; divided by a column, it divides exactly, as the record path does.
    Adding -0.0 keeps every value, signed zeros included; a zero divisor (whose reciprocal is exact)
    stays a scalar, since polars folds `0 + x` into `x`."""
    spread = f"({constant} + pl.int_range(pl.len()).cast(pl.Float64) * -0.0)"
    return f"pl.when({constant} == 0.0).then({constant}).otherwise{spread}"


def _src(node: Node) -> str:
    if isinstance(node, Lit):
        return _lit_source(node.value, node.dtype if node.dtype != NULL else "bool")
    if isinstance(node, Col):
        return f"pl.col({node.name!r})"
    if isinstance(node, Unary):
        if node.op == "NOT":
            return f"(~{_src_as('bool', node.arg)})"
        return f"(-{_src_as(node.dtype, node.arg)})"
    if isinstance(node, Binary):
        op = node.op
        if op in ("AND", "OR"):
            symbol = "&" if op == "AND" else "|"
            return f"({_src_as('bool', node.left)} {symbol} {_src_as('bool', node.right)})"
        if op in _CMP:
            common = _unify([node.left.dtype, node.right.dtype], node.pos, "comparison")
            common = "bool" if common == NULL else common
            symbol = {"=": "==", "<>": "!="}.get(op, op)
            return f"({_src_as(common, node.left)} {symbol} {_src_as(common, node.right)})"
        if op == "/":
            right = _src_as("float64", node.right)
            found: list[str] = []
            _columns(node.right, found)
            if not found:
                right = _spread(right)
            return f"({_src_as('float64', node.left)} / {right})"
        if op == "%":
            # Polars' % floors; SQL's MOD keeps the dividend's sign: step back by the divisor if they differ.
            a, b = _src_as("int64", node.left), _src_as("int64", node.right)
            r = f"({a} % {b})"
            return f"pl.when(({r} != 0) & (({r} < 0) != ({a} < 0))).then({r} - {b}).otherwise({r})"
        symbol = "+" if op == "||" else op
        return f"({_src_as(node.dtype, node.left)} {symbol} {_src_as(node.dtype, node.right)})"
    if isinstance(node, IsNull):
        method = "is_not_null" if node.negated else "is_null"
        return f"{_src_as('bool', node.arg)}.{method}()"
    if isinstance(node, Case):
        parts = "pl"
        for cond, value in node.whens:
            parts += f".when({_src_as('bool', cond)}).then({_src_as(node.dtype, value)})"
        default = (
            _src_as(node.dtype, node.default)
            if node.default is not None
            else f"pl.lit(None, dtype={_PDT[node.dtype]})"
        )
        return f"{parts}.otherwise({default})"
    if isinstance(node, Cast):
        if node.arg.dtype == NULL:
            return f"pl.lit(None, dtype={_PDT[node.target]})"
        return f"({cast_source(_src(node.arg), node.arg.dtype, node.target)})"  # type: ignore[arg-type]
    assert isinstance(node, Func)
    return _src_func(node)


def _src_func(node: Func) -> str:
    name = node.name
    if name == "COALESCE":
        return f"pl.coalesce({', '.join(_src_as(node.dtype, a) for a in node.args)})"
    if name == "NULLIF":
        equal = _src(_typed_binary(node.pos, "=", node.args[0], node.args[1]))
        first = _src_as(node.dtype, node.args[0])
        return f"pl.when({equal}).then(pl.lit(None, dtype={_PDT[node.dtype]})).otherwise({first})"
    a = node.args[0]
    dtype = a.dtype if a.dtype != NULL else "float64"
    if name == "ABS":
        return f"{_src_as(dtype, a)}.abs()"
    if name in ("ROUND", "FLOOR", "CEIL", "CEILING"):
        if dtype == "int64":
            return _src_as(dtype, a)
        method = {"ROUND": "round(0, mode='half_to_even')", "FLOOR": "floor()"}.get(name, "ceil()")
        return f"{_src_as('float64', a)}.{method}"
    if name in ("SQRT", "LN", "EXP"):
        method = {"SQRT": "sqrt()", "LN": "log()", "EXP": "exp()"}[name]
        return f"{_src_as('float64', a)}.{method}"
    if name == "LENGTH":
        return f"{_src_as('string', a)}.str.len_chars().cast(pl.Int64)"
    method = {"LOWER": "to_lowercase()", "UPPER": "to_uppercase()", "TRIM": "strip_chars(' ')"}[name]
    return f"{_src_as('string', a)}.str.{method}"


def _typed_binary(pos: int, op: str, left: Node, right: Node) -> Binary:
    node = Binary(pos, op, left, right)
    node.dtype = "bool"
    return node


# -- public ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Expression:
    """A parsed, type-checked expression and its two compiled forms."""

    text: str
    dtype: DType
    columns: tuple[str, ...]
    root: Node

    def to_python(self) -> Fn:
        """A closure `row -> value` (the record path)."""
        return _as(self.dtype, self.root)

    def to_polars_source(self) -> str:
        """Polars source of the expression, typed as `dtype` (the batch path)."""
        return f"({_src_as(self.dtype, self.root)}).cast({_PDT[self.dtype]})"


def _columns(node: Node, found: list[str]) -> None:
    if isinstance(node, Col) and node.name not in found:
        found.append(node.name)
    for child in vars(node).values():
        items = child if isinstance(child, list) else [child]
        for item in items:
            for sub in item if isinstance(item, tuple) else (item,):
                if isinstance(sub, Node):
                    _columns(sub, found)


def parse(text: str, schema: Mapping[str, DType]) -> Expression:
    """Parse and type-check `text` against a frame schema; raises SqlError on anything unsupported."""
    if not text.strip():
        raise SqlError("the expression is empty")
    root = _Parser(text).parse()
    _check(root, schema)
    if root.dtype == NULL:
        raise SqlError("the expression is always NULL; give it a type with CAST(NULL AS …)", root.pos)
    found: list[str] = []
    _columns(root, found)
    return Expression(text=text, dtype=root.dtype, columns=tuple(found), root=root)  # type: ignore[arg-type]
