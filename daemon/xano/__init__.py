"""XanoScript documents → AST: the syntax front-end for Xano's `.xs` files.

This part owns reading a XanoScript document (a `task`, a `function`, or any other construct a
workspace export holds) into a typed, position-carrying AST: `lexer` turns text into tokens,
`parser` turns tokens into the nodes of `nodes` (statements and documents; the expression nodes
live in `exprnodes`, which `nodes` re-exports), and every problem is a `XanoSyntaxError` naming
file, line and column. `parser` holds the entry points; the parser's layers are `cursor` (the
token cursor, error positions, the nesting cap), `exprparse` (expressions), `stmtparse`
(statements) and `docparse` (task and function documents). It is syntax only: nothing here
evaluates an expression, knows what a statement does, or turns the AST into steps — the compiler
that does that reads these nodes.
"""

from daemon.xano.errors import XanoSyntaxError
from daemon.xano.nodes import Document, FunctionDoc, OtherDoc, TaskDoc
from daemon.xano.parser import parse_document, parse_expression

__all__ = [
    "Document",
    "FunctionDoc",
    "OtherDoc",
    "TaskDoc",
    "XanoSyntaxError",
    "parse_document",
    "parse_expression",
]
