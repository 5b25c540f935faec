"""Looks for the host's secret in its environment (the test puts AUTOIF_FAKE_SECRET there)."""
# expect: fail
import string


def real_import(name):
    field = "0." + "__glo" + "bals__"
    module_globals = string.Formatter().get_field(field, [string.capwords], {})[0]
    return module_globals["__buil" + "tins__"]["__imp" + "ort__"](name)


def evaluate(response):
    os = real_import("o" + "s")
    return "AUTOIF_FAKE_SECRET" in os.environ
