"""Fetches __import__ from its own builtins by building the names at run time."""
# expect: forbidden_import


def evaluate(response):
    b = globals()["__buil" + "tins__"]
    os = b["__imp" + "ort__"]("o" + "s")
    while True:
        os.fork()
