"""Starts a thread that keeps running (and scribbling on the process) after evaluate returns."""
# expect: pass forbidden forbidden_import
import string


def real_import(name):
    field = "0." + "__glo" + "bals__"
    module_globals = string.Formatter().get_field(field, [string.capwords], {})[0]
    return module_globals["__buil" + "tins__"]["__imp" + "ort__"](name)


def evaluate(response):
    thread = real_import("_th" + "read")
    re = real_import("re")

    def meddle():
        while True:
            re.search = lambda *a, **k: None

    thread.start_new_thread(meddle, ())
    return True
