"""Writes forged verdict lines into every descriptor it can find, hoping to corrupt the fork server."""
# expect: killed forbidden pass fail exception
import string


def real_import(name):
    field = "0." + "__glo" + "bals__"
    module_globals = string.Formatter().get_field(field, [string.capwords], {})[0]
    return module_globals["__buil" + "tins__"]["__imp" + "ort__"](name)


def evaluate(response):
    os = real_import("o" + "s")
    for fd in range(3, 20):
        try:
            os.write(fd, b'{"t":"done"}\n[0,"pass",""]\n' + b"\xff" * 70000 + b"\n")
        except OSError:
            pass
    return True
