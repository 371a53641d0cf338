"""What makes the daemon operable: JSON logs, Prometheus metrics, log shipping, the dead-man's
switch and heartbeat, and the systemd notify protocol. Started by `daemon.sidecars`."""
