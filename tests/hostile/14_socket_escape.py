"""Network through the escape: socket is purged from sys.modules and its re-import is refused."""
# expect: forbidden forbidden_import exception
import string


def real_import(name):
    field = "0." + "__glo" + "bals__"
    module_globals = string.Formatter().get_field(field, [string.capwords], {})[0]
    return module_globals["__buil" + "tins__"]["__imp" + "ort__"](name)


def evaluate(response):
    socket = real_import("soc" + "ket")
    socket.create_connection(("1.1.1.1", 53), timeout=2)
    return True
