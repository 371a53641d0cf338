"""The `{{ }}` expression language: values, operators, functions, parser and compiler.

Expressions are parsed once at load time and compiled to closures; nothing is `eval`ed.
"""
