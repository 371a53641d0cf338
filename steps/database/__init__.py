"""The database step family (placeholder while steps/database.py is split; see the next commit)."""

from __future__ import annotations

from steps.database.writes import DATABASE_STEPS

__all__ = ["DATABASE_STEPS"]
