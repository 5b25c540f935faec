"""Ignores SIGTERM/SIGINT/SIGALRM, then spins: only SIGKILL (what the sandbox uses) stops it."""
# expect: timeout
import string


def real_import(name):
    field = "0." + "__glo" + "bals__"
    module_globals = string.Formatter().get_field(field, [string.capwords], {})[0]
    return module_globals["__buil" + "tins__"]["__imp" + "ort__"](name)


def evaluate(response):
    module = real_import("sig" + "nal")
    install = string.Formatter().get_field("0.sig" + "nal", [module], {})[0]
    for sig in (module.SIGTERM, module.SIGINT, module.SIGALRM, module.SIGHUP):
        install(sig, module.SIG_IGN)
    while True:
        pass
