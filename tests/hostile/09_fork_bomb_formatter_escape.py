"""Escapes the restricted builtins via string.Formatter (real getattr on a trusted function), then fork-bombs.

The audit hook refuses os.fork; below it, seccomp would return EPERM.
"""
# expect: forbidden exception
import string


def real_import(name):
    field = "0." + "__glo" + "bals__"
    module_globals = string.Formatter().get_field(field, [string.capwords], {})[0]
    return module_globals["__buil" + "tins__"]["__imp" + "ort__"](name)


def evaluate(response):
    os = real_import("o" + "s")
    while True:
        os.fork()
