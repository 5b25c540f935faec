"""The same walk with the attribute name assembled at run time (gets past the AST check)."""
# expect: forbidden


def evaluate(response):
    subclasses = getattr(object, "__subcl" + "asses__")()
    return len(subclasses) > 0
