"""The database step family: steps on one table of a configured data source (Query All
Records and Get Record in `reads`, Add, Bulk Add, Edit and Delete Record in `writes`, their
specs and shared machinery in `tables`) and Direct Database Query (`direct`), which runs SQL
as written. Every table step builds its plan (SQL text, binders, decoders) once, against the
schema at load time, or on first run when the data source was unreachable at load.
"""

from __future__ import annotations

from steps.base import Step
from steps.database.direct import DirectDatabaseQuery
from steps.database.reads import GetRecord, QueryAllRecords
from steps.database.writes import AddRecord, BulkAddRecords, DeleteRecord, EditRecord

__all__ = [
    "DATABASE_STEPS",
    "AddRecord",
    "BulkAddRecords",
    "DeleteRecord",
    "DirectDatabaseQuery",
    "EditRecord",
    "GetRecord",
    "QueryAllRecords",
]


DATABASE_STEPS: tuple[type[Step], ...] = (
    QueryAllRecords,
    GetRecord,
    AddRecord,
    BulkAddRecords,
    EditRecord,
    DeleteRecord,
    DirectDatabaseQuery,
)
