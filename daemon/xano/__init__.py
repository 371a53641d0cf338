"""XanoScript: Xano's `.xs` task and function files, read and compiled into the engine's steps.

This part owns everything between a XanoScript file and the step graph every task runs on. The
syntax front-end: `lexer` turns text into tokens, `parser` (entry points) with its layers
`cursor` (token cursor, error positions, the nesting cap), `exprparse`, `stmtparse` and
`docparse` turns tokens into the position-carrying nodes of `nodes` (statements and documents;
expression nodes in `exprnodes`), and every syntax problem is a `XanoSyntaxError` (`errors`)
naming file, line and column. The compiler: `expressions` turns expressions into the closures of
`daemon.expr` at load time, `values` holds Xano's (PHP's) value semantics they use, and
`statements` turns statements into the step dicts JSON tasks are made of, with `library` (the
`db.*` statements and dispatch), `where` (query expressions → filter objects), `compute`
(`array.*`, `text.*`, `security.*`, …) and `outbound` (`api.request`, `redis.*`, email). `loader`
is the `.xs` reader `[daemon] tasks` / `functions` use; bootstrap hands it to config. So a
XanoScript task and its JSON twin share one compiled step graph and one runner.
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
