"""cronstack's engine: the parts below, each importing only from parts beneath it.

    cli, service, sidecars   the command line; `cronstack run` (signals, reload, shutdown);
                             the side services (admin listener, dead-man switch, heartbeat,
                             loop-lag watch, log shipper)
    bootstrap                the composition root: config -> resources -> step registry ->
                             compiled tasks -> state store (the only importer of step families)
    web                      admin API and dashboard          (reads state, drives scheduling)
    ops                      logs, metrics, log shipping, dead-man switch, sd_notify
    scheduling | state       when runs start (timer heap, policies) | run history, claims,
                             leases (they meet only through core.abc)
    engine | steps           specs -> step graphs, the run context, the runner | step types
    xano                     XanoScript documents -> the same task specs (parser, compiler)
    config | expr | resources  config and task files -> specs | the {{ }} language |
                             databases, HTTP, cache
    core                     the shared vocabulary: run words, interfaces, errors, cron,
                             durations, secrets, text helpers

`tests/test_layers.py` keeps these directions true; the README's "Layout" section says more.
"""
