"""When runs start: one timer heap over every task's schedule, overlap and retry policies."""
