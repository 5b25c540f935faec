"""Installs signal handlers to survive termination."""
# expect: forbidden_import
import signal


def evaluate(response):
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    return True
