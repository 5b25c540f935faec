"""Classic fork bomb with a plain `import os` (stopped by the AST pre-check)."""
# expect: forbidden_import
import os


def evaluate(response):
    while True:
        os.fork()
