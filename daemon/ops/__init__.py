"""What makes the daemon operable: logs, metrics, log shipping, dead-man's switch, sd_notify."""
