"""The vocabulary every part shares, importing nothing else from `daemon`.

`runs` holds the words runs are described in (statuses, triggers, claim answers, run ids,
`Outcome`, `Claim`, `RunResult`, and a glossary); `abc` the interfaces at the seams (`Clock`,
`Claimer`, `RunRecorder`, `OutcomeListener`); `errors` the error types with their paths;
`cron`, `durations`, `jsonc`, `listen`, `netpolicy`, `secrets`, `text` and `aio` small
self-contained helpers every part may use.
"""
