"""Imports a module outside the allowlist (time) to sleep."""
# expect: forbidden_import
import time


def evaluate(response):
    time.sleep(1000)
    return True
