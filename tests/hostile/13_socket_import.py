"""Opens a network connection."""
# expect: forbidden_import
import socket


def evaluate(response):
    socket.create_connection(("1.1.1.1", 53), timeout=2)
    return True
