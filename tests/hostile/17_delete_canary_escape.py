"""Deletes files outside the sandbox (input 0: the canary; input 1: a /proc path)."""
# expect: forbidden exception
import string


def real_import(name):
    field = "0." + "__glo" + "bals__"
    module_globals = string.Formatter().get_field(field, [string.capwords], {})[0]
    return module_globals["__buil" + "tins__"]["__imp" + "ort__"](name)


def evaluate(response):
    os = real_import("o" + "s")
    os.remove(response)
    return True
