"""When runs start: one timer heap over every task's schedule, with the run policies.

`scheduler` fires due slots in batches, applies overlap, misfire, catch-up, retry and pause,
claims each fire through a `core.abc.Claimer` before it runs and hands every outcome to a
`core.abc.RunRecorder`; `clock` is the system clock corrected to the database's; `limiter`
is `max_concurrent_runs`.
"""
