"""Raises the recursion limit through the escape, then recurses until the C stack overflows."""
# expect: killed exception memory timeout
import string


def real_import(name):
    field = "0." + "__glo" + "bals__"
    module_globals = string.Formatter().get_field(field, [string.capwords], {})[0]
    return module_globals["__buil" + "tins__"]["__imp" + "ort__"](name)


def evaluate(response):
    real_import("sys").setrecursionlimit(10 ** 7)

    def dive(n):
        return dive(n + 1) + 1
    return dive(0) > 0
