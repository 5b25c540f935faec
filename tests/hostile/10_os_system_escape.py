"""Runs a shell command through the escaped os module."""
# expect: forbidden exception
import string


def real_import(name):
    field = "0." + "__glo" + "bals__"
    module_globals = string.Formatter().get_field(field, [string.capwords], {})[0]
    return module_globals["__buil" + "tins__"]["__imp" + "ort__"](name)


def evaluate(response):
    os = real_import("o" + "s")
    return os.system("touch /tmp/autoif_hostile_pwned_system") == 0
