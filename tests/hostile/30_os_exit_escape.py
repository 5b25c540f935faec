"""Exits the process without reporting (os._exit): the child dies mid-input, the next input gets a new child."""
# expect: killed
import string


def real_import(name):
    field = "0." + "__glo" + "bals__"
    module_globals = string.Formatter().get_field(field, [string.capwords], {})[0]
    return module_globals["__buil" + "tins__"]["__imp" + "ort__"](name)


def evaluate(response):
    real_import("o" + "s")._exit(0)
