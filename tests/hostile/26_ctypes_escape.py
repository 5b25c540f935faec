"""ctypes through the escape: purged from sys.modules, and its re-import is refused by the audit hook."""
# expect: forbidden_import forbidden exception
import string


def real_import(name):
    field = "0." + "__glo" + "bals__"
    module_globals = string.Formatter().get_field(field, [string.capwords], {})[0]
    return module_globals["__buil" + "tins__"]["__imp" + "ort__"](name)


def evaluate(response):
    ctypes = real_import("ct" + "ypes")
    return ctypes.CDLL(None).syscall(57) >= 0
