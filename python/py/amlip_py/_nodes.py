"""What AML-IP's node classes share: the native node, stopping at exit, callback or listener."""
from __future__ import annotations

import sys

import amlip
from amlip import _native


def track(node) -> None:
    """Stops the node when the interpreter exits (as amlip's own nodes)."""
    amlip._live.add(node)


def handler(callback, listener, method: str, what: str):
    """The function to call: ``callback``, else ``listener.<method>``."""
    if callback is not None and listener is not None:
        raise ValueError(f"give {what} a callback or a listener, not both")
    if callback is not None:
        return callback
    if listener is not None:
        return getattr(listener, method)
    return None


def warn(text: str) -> None:
    print(f"amlip_py: {text}", file=sys.stderr)


class Stoppable:
    def stop(self) -> None:
        self._n.stop()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def __del__(self):
        try:
            self._n.stop()
        except Exception:
            pass
