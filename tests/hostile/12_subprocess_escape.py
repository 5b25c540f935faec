"""subprocess through the escape (nltk already loaded it into the fork server)."""
# expect: forbidden forbidden_import exception
import string


def real_import(name):
    field = "0." + "__glo" + "bals__"
    module_globals = string.Formatter().get_field(field, [string.capwords], {})[0]
    return module_globals["__buil" + "tins__"]["__imp" + "ort__"](name)


def evaluate(response):
    sp = real_import("sub" + "process")
    return sp.run(["touch", "/tmp/autoif_hostile_pwned_subprocess"]).returncode == 0
