"""Turns task specs into runnable step graphs and runs them once.

`compiler` builds tasks, `stacks` their steps from the registry and templates into closures;
`context` is the run context steps see (it implements `steps.base.StepContext`); `runner` runs
a task to its outcome, and is the only place that runs an `on_failure` stack.
"""
