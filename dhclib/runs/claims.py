"""Exactly-once claims on a shared result store (issue #8, item 2): a run is trained only by whoever holds its claim.

A claim is a small file, ``<store>/claims/<benchmark>/<method>/seed<seed>-<key>.claim``, made by a protocol that is
safe on NFS, where ``O_EXCL`` is not: write a file of a unique name (host, pid, time, a random token), ``link()``
it to the claim's name, and count the unique file's links: 2 means the link took, whatever ``link()`` returned
(a lost reply on NFS can report a failure that happened, or a success that did not). A holder refreshes its claim
(its modification time) while it trains (:class:`Heartbeat`); a claim not refreshed for ``stale_after`` seconds
belongs to a dead worker and is taken over: renamed aside, then claimed afresh. Two takers of one stale claim race
only on the rename, and the loser's later ``link()`` fails; a duplicated run would be wasted work, never a wrong
result (runs are deterministic and written atomically).
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Claim", "claim", "release", "refresh", "holder", "Heartbeat", "STALE_AFTER"]

# Seconds without a refresh after which a claim is taken over; a holder refreshes every STALE_AFTER / 4.
STALE_AFTER = 600.0


@dataclass(frozen=True)
class Claim:
    path: Path
    token: str


def holder(path: Path) -> dict | None:
    """Who holds the claim at ``path`` (host, pid, time, token), or None when there is none or it cannot be read."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def _stale(path: Path, stale_after: float) -> bool:
    try:
        return time.time() - path.stat().st_mtime > stale_after
    except FileNotFoundError:
        return False


def _link(path: Path, token: str) -> bool:
    unique = path.with_name(f".{path.name}.{token}")
    unique.write_text(json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "time": time.time(),
                                  "token": token}))
    try:
        try:
            os.link(unique, path)
        except FileExistsError:
            pass
        except OSError:
            pass  # NFS: the link may have taken although the call failed; the link count says
        return unique.stat().st_nlink == 2
    finally:
        unique.unlink(missing_ok=True)


def claim(path: Path, stale_after: float = STALE_AFTER) -> Claim | None:
    """Claim ``path`` for this process: the :class:`Claim`, or None while someone else holds a fresh claim."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    token = uuid.uuid4().hex
    if _link(path, token):
        return Claim(path, token)
    if _stale(path, stale_after):
        aside = path.with_name(f"{path.name}.stale-{token}")
        try:
            os.rename(path, aside)
        except FileNotFoundError:
            return None  # another taker moved it first; its claim stands
        aside.unlink(missing_ok=True)
        if _link(path, token):
            return Claim(path, token)
    return None


def refresh(c: Claim) -> None:
    """Tell the others the holder is alive (the claim's modification time)."""
    try:
        os.utime(c.path)
    except FileNotFoundError:
        pass


def release(c: Claim) -> None:
    """Give the claim up, if it is still ours (a claim taken over after going stale is not)."""
    held = holder(c.path)
    if held is not None and held.get("token") == c.token:
        c.path.unlink(missing_ok=True)


class Heartbeat:
    """Refresh claims every ``every`` seconds in a daemon thread while a block trains:
    ``with Heartbeat(claims): train()``."""

    def __init__(self, claims: list[Claim], every: float = STALE_AFTER / 4) -> None:
        self.claims, self.every = claims, every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, daemon=True)

    def _beat(self) -> None:
        while not self._stop.wait(self.every):
            for c in self.claims:
                refresh(c)

    def __enter__(self) -> "Heartbeat":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
