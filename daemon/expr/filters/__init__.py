"""Xano's value-side filter library (`value|filter:arg`), with PHP-like equality and emptiness. The
package owns every filter and the rules they share: `base` holds the calling convention
(FilterDef, FilterContext, FilterEnv, ElementFn; its docstring is the contract the XanoScript
compiler relies on), `compare` the type names and PHP's truthiness, emptiness, equality and
ordering, `args` argument coercion and path helpers, and one module per family holds the filters
themselves: `text`, `regex`, `urls`, `charsets`, `arrays`, `objects`, `numeric` (math, bitwise,
comparisons), `convert` (to_*, JSON, YAML, XML, CSV, base64, radix), `security` (hashes, HMAC,
ciphers, JWT, secureid, uuid) and `timestamps`; `registry` builds FILTERS and
UNSUPPORTED_FILTERS from one ordered table that imports every family.
"""

from __future__ import annotations

from daemon.expr.filters.base import ElementFn, FilterContext, FilterDef, FilterEnv
from daemon.expr.filters.compare import (
    is_empty,
    loose_equals,
    php_compare,
    php_truthy,
    strict_equals,
    xano_type,
)
from daemon.expr.filters.registry import FILTERS, UNSUPPORTED_FILTERS

__all__ = [
    "FILTERS",
    "UNSUPPORTED_FILTERS",
    "ElementFn",
    "FilterContext",
    "FilterDef",
    "FilterEnv",
    "is_empty",
    "loose_equals",
    "php_compare",
    "php_truthy",
    "strict_equals",
    "xano_type",
]
