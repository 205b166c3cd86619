"""The mutation sites of a module's source and how one mutant is applied (used by benchmarks/mutation.py).

Sites: comparison, arithmetic and boolean operators swapped, constants nudged, conditions negated, return values
dropped, call statements removed; docstrings, log/raise messages, f-strings and `# no mutate` lines are skipped.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass

_CMP_SWAP = {
    ast.Lt: ast.LtE,
    ast.LtE: ast.Lt,
    ast.Gt: ast.GtE,
    ast.GtE: ast.Gt,
    ast.Eq: ast.NotEq,
    ast.NotEq: ast.Eq,
    ast.In: ast.NotIn,
    ast.NotIn: ast.In,
    ast.Is: ast.IsNot,
    ast.IsNot: ast.Is,
}
_BIN_SWAP = {
    ast.Add: ast.Sub,
    ast.Sub: ast.Add,
    ast.Mult: ast.Div,
    ast.Div: ast.Mult,
    ast.FloorDiv: ast.Mult,
    ast.Mod: ast.FloorDiv,
    ast.Pow: ast.Mult,
    ast.BitAnd: ast.BitOr,
    ast.BitOr: ast.BitAnd,
}


@dataclass(frozen=True)
class Mutant:
    line: int
    end_line: int
    col: int
    end_col: int
    replacement: str  # source text replacing [line:col, end_line:end_col)
    what: str

    def label(self) -> str:
        return f"line {self.line}: {self.what}"


def _docstring_nodes(tree: ast.AST) -> set[int]:
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if (
                isinstance(first, ast.Expr)
                and isinstance(first.value, ast.Constant)
                and isinstance(first.value.value, str)
            ):
                out.add(id(first.value))
    return out


def _is_logging_or_message(node: ast.AST, parents: dict[int, ast.AST]) -> bool:
    """Inside a logging call, a raise, an assert message or an f-string: changes there are cosmetic."""
    current = node
    while id(current) in parents:
        parent = parents[id(current)]
        if isinstance(parent, (ast.Raise, ast.JoinedStr)):
            return True
        if isinstance(parent, ast.Call):
            func = parent.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name in {"debug", "info", "warning", "error", "exception", "print", "append_note"}:
                return True
        current = parent
    return False


def find_mutants(source: str) -> list[Mutant]:
    """Every mutation site of a module's source (skipping docstrings, messages and `# no mutate` lines)."""
    tree = ast.parse(source)
    lines = source.splitlines()
    parents = {id(child): node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    docstrings = _docstring_nodes(tree)
    out: list[Mutant] = []

    def add(node: ast.AST, new: ast.AST | str, what: str) -> None:
        if "no mutate" in lines[node.lineno - 1] or _is_logging_or_message(node, parents):
            return
        text = new if isinstance(new, str) else ast.unparse(new)
        out.append(Mutant(node.lineno, node.end_lineno, node.col_offset, node.end_col_offset, text, what))

    for node in ast.walk(tree):
        if isinstance(node, ast.Compare):
            for i, op in enumerate(node.ops):
                if type(op) in _CMP_SWAP:
                    ops = list(node.ops)
                    ops[i] = _CMP_SWAP[type(op)]()
                    new = ast.Compare(left=node.left, ops=ops, comparators=node.comparators)
                    add(node, new, f"{type(op).__name__} -> {type(ops[i]).__name__}")
        elif isinstance(node, ast.BinOp) and type(node.op) in _BIN_SWAP:
            new_op = _BIN_SWAP[type(node.op)]()
            add(
                node,
                ast.BinOp(left=node.left, op=new_op, right=node.right),
                f"{type(node.op).__name__} -> {type(new_op).__name__}",
            )
        elif isinstance(node, ast.AugAssign) and type(node.op) in _BIN_SWAP:
            new_op = _BIN_SWAP[type(node.op)]()
            add(
                node,
                ast.AugAssign(target=node.target, op=new_op, value=node.value),
                f"{type(node.op).__name__}= -> {type(new_op).__name__}=",
            )
        elif isinstance(node, ast.BoolOp):
            other = ast.Or() if isinstance(node.op, ast.And) else ast.And()
            add(node, ast.BoolOp(op=other, values=node.values), f"{type(node.op).__name__} -> {type(other).__name__}")
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.Not, ast.USub)):
            add(node, node.operand, f"drop {type(node.op).__name__}")
        elif isinstance(node, ast.Constant) and id(node) not in docstrings:
            value = node.value
            if isinstance(value, bool):
                add(node, repr(not value), f"{value} -> {not value}")
            elif isinstance(value, int):
                add(node, repr(value + 1), f"{value} -> {value + 1}")
            elif isinstance(value, float):
                new = value * 2 if value else 1.0
                add(node, repr(new), f"{value} -> {new}")
        elif isinstance(node, (ast.If, ast.While)) and not isinstance(node.test, ast.Constant):
            test = node.test
            add(test, ast.UnaryOp(op=ast.Not(), operand=test), "negate condition")
        elif (
            isinstance(node, ast.Return)
            and node.value is not None
            and not (isinstance(node.value, ast.Constant) and node.value.value is None)
        ):
            add(node, "return None", "return None")
        elif isinstance(node, ast.Expr) and isinstance(node.value, ast.Call) and id(node.value) not in docstrings:
            add(node, "pass", "remove call statement")
    # Sort for a stable order (ast.walk is breadth-first and stable too, but sorting is explicit).
    return sorted(set(out), key=lambda m: (m.line, m.col, m.end_line, m.end_col, m.what, m.replacement))


def apply(source: str, mutant: Mutant) -> str:
    lines = source.splitlines(keepends=True)
    starts = [0]
    for line in lines:
        starts.append(starts[-1] + len(line))

    def offset(line: int, col: int) -> int:  # ast columns are UTF-8 byte offsets
        text = lines[line - 1]
        return starts[line - 1] + len(text.encode("utf-8")[:col].decode("utf-8", errors="ignore"))

    a, b = offset(mutant.line, mutant.col), offset(mutant.end_line, mutant.end_col)
    replacement = mutant.replacement
    if "\n" in replacement:
        replacement = "(" + replacement.replace("\n", " ") + ")"
    return source[:a] + replacement + source[b:]
