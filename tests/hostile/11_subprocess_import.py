"""Starts a program with subprocess."""
# expect: forbidden_import
import subprocess


def evaluate(response):
    return subprocess.run(["id"]).returncode == 0
