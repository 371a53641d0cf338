"""Step types, one module per family; `build_registry()` collects them."""

from __future__ import annotations

from steps.base import Registry


def build_registry() -> Registry:
    """Every step type, by display name, snake_case id and aliases (built once, handed around)."""
    # Imported here so importing `steps` (for the base types) does not pull in every family.
    from steps.cache import CACHE_STEPS
    from steps.command import COMMAND_STEPS
    from steps.control import CONTROL_STEPS
    from steps.database import DATABASE_STEPS
    from steps.email import EMAIL_STEPS
    from steps.flow import FLOW_STEPS
    from steps.http import HTTP_STEPS
    from steps.math import MATH_STEPS
    from steps.python import PYTHON_STEPS
    from steps.records import RECORD_STEPS
    from steps.variables import VARIABLE_STEPS

    return Registry(
        (
            *VARIABLE_STEPS,
            *MATH_STEPS,
            *CONTROL_STEPS,
            *HTTP_STEPS,
            *CACHE_STEPS,
            *DATABASE_STEPS,
            *RECORD_STEPS,
            *FLOW_STEPS,
            *EMAIL_STEPS,
            *COMMAND_STEPS,
            *PYTHON_STEPS,
        )
    )
