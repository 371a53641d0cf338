"""The vocabulary every part shares: errors, run words, interfaces, cron, durations, secrets.

Imports nothing else from `daemon`; everything else may import it.
"""
