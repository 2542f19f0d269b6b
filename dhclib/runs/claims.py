"""Exactly-once claims on a shared result store (issue #8, item 2; issue #28, item 3): a run is trained only by
whoever holds its claim.

A claim is a small file, ``<store>/claims/<benchmark>/<method>/seed<seed>-<key>.claim``, made by a protocol that is
safe on NFS, where ``O_EXCL`` is not: write a file of a unique name, ``link()`` it to the claim's name, and count
the unique file's links: 2 means the link took, whatever ``link()`` returned (a lost reply on NFS can report a
failure that happened, or a success that did not). The claim names its holder: host, PID namespace, PID, the
process's start token (:func:`start_token`: a later process reusing the PID is not the holder) and a random token.

A claim is abandoned when its holder is known to be gone (a process of this host that no longer runs: taken over
at once) or when it was not refreshed for ``stale_after`` seconds (a holder on another host: its lease, which the
holder renews while it trains, :class:`Heartbeat`). Removing a claim, whether a taker removes an abandoned one or
its holder releases it, goes through the claim's guard, ``<claim>.take-<its token>``, itself claimed by the same
protocol: of all who judged one claim abandoned, only the guard's holder removes it, and only if it is still that
claim (a second taker once renamed the first one's fresh claim aside: two winners, issue #28's D9). Whoever then
links the free name first holds the run.
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

from dhclib.errors import DhcError

__all__ = ["Claim", "claim", "release", "refresh", "holder", "Heartbeat", "STALE_AFTER", "alive", "start_token",
           "pid_namespace"]

# Seconds without a refresh after which a claim of another host is taken over; a holder refreshes every
# STALE_AFTER / 4. A claim of a dead process on this host is taken over at once.
STALE_AFTER = 60.0  # a dead worker elsewhere costs a minute, not ten; its clock must agree with ours to seconds


@dataclass(frozen=True)
class Claim:
    path: Path
    token: str


def alive(pid: int) -> bool:
    """Whether a process of this PID runs on this host (one of another user counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def start_token(pid: int) -> str | None:
    """What tells the process ``pid`` from a later one that reuses its PID: the boot and the process's start time
    (``/proc/<pid>/stat``'s 22nd field, clock ticks since boot); None where ``/proc`` does not say."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return None
    fields = stat.rpartition(")")[2].split()  # the command name, in parentheses, may hold spaces
    return f"{boot}:{fields[19]}" if len(fields) > 19 else None


def pid_namespace() -> str | None:
    """This process's PID namespace (``pid:[inode]``): processes of one host name but another namespace (a
    container sharing the host's name) number their PIDs apart. None where ``/proc`` does not say."""
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return None


def holder(path: Path) -> dict | None:
    """Who holds the claim at ``path`` (host, pid, start, time, token), or None when there is none or it cannot be
    read."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def _gone(who: dict | None) -> bool:
    """Whether a claim's holder is known to be gone: a process of this host (and PID namespace) that no longer
    runs, or whose PID a later process has taken. Of a holder elsewhere nothing is known: its lease decides."""
    if not isinstance(who, dict) or not isinstance(who.get("pid"), int):
        return False
    if (who.get("host"), who.get("pidns")) != (socket.gethostname(), pid_namespace()):
        return False
    pid = who["pid"]
    if not alive(pid):
        return True
    recorded, now = who.get("start"), start_token(pid)
    return recorded is not None and now is not None and recorded != now


def _identity(path: Path) -> tuple[str, bool] | None:
    """``(what names the claim at path, whether its holder is known to be gone)``, None when there is none. The
    name is its token (never reused), or its inode where it cannot be read."""
    who = holder(path)
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    token = who.get("token") if isinstance(who, dict) else None
    return (token if isinstance(token, str) else f"inode{st.st_ino}"), _gone(who)


def _disk_error(path: Path, exc: OSError) -> DhcError:
    return DhcError(f"cannot claim {path}: {exc.strerror or exc}; the store's folder must be writable with space "
                    f"left (free some, then run the same command again)")


def _link(path: Path, token: str) -> bool:
    """Link a complete claim of this process to ``path``: True when it took. A claim that cannot be written (a full
    disk) is one :class:`~dhclib.errors.DhcError` and leaves no unique file behind."""
    unique = path.with_name(f".{path.name}.{token}")
    owner = {"host": socket.gethostname(), "pidns": pid_namespace(), "pid": os.getpid(),
             "start": start_token(os.getpid()), "time": time.time(), "token": token}
    try:
        try:
            unique.write_text(json.dumps(owner))
        except OSError as exc:
            raise _disk_error(path, exc) from None
        try:
            os.link(unique, path)
        except FileExistsError:
            pass  # held by another, or, on NFS, a retried link whose first try took: the link count says
        except OSError as exc:  # NFS: the link may have taken although the call failed; the link count says
            if unique.stat().st_nlink != 2 and not path.exists():
                raise _disk_error(path, exc) from None
        return unique.stat().st_nlink == 2
    finally:
        unique.unlink(missing_ok=True)


def _remove(path: Path, ident: str, stale_after: float) -> bool:
    """Remove the claim named ``ident`` from ``path`` as the only one who does: the holder of its guard, and only
    while it is still that claim. False when another holds the guard or the claim has changed. The guard is given
    up by a plain unlink: its holder alone can, unless it stalled for longer than a lease between two calls."""
    guard = claim(path.with_name(f"{path.name}.take-{ident[:16]}"), stale_after)
    if guard is None:
        return False
    try:
        now = _identity(path)
        if now is None or now[0] != ident:
            return False
        path.unlink(missing_ok=True)
        return True
    finally:
        guard.path.unlink(missing_ok=True)


def claim(path: Path, stale_after: float = STALE_AFTER) -> Claim | None:
    """Claim ``path`` for this process: the :class:`Claim`, or None while someone else holds it (a live process of
    this host, or one of another host that refreshed it within ``stale_after`` seconds)."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _disk_error(path, exc) from None
    token = uuid.uuid4().hex
    if _link(path, token):
        return Claim(path, token)
    seen = _identity(path)
    if seen is None:
        return Claim(path, token) if _link(path, token) else None  # released meanwhile
    ident, gone = seen
    if not gone and not _stale(path, stale_after):
        return None
    if not _remove(path, ident, stale_after):
        return None
    return Claim(path, token) if _link(path, token) else None


def _stale(path: Path, stale_after: float) -> bool:
    try:
        return time.time() - path.stat().st_mtime > stale_after
    except FileNotFoundError:
        return False


def refresh(c: Claim) -> None:
    """Tell the others the holder is alive (the claim's modification time)."""
    try:
        os.utime(c.path)
    except FileNotFoundError:
        pass


def release(c: Claim) -> None:
    """Give the claim up, if it is still ours (a claim taken over after going stale is not): through its guard, as
    a takeover removes, so that a release and a takeover never both remove. Never raises: it runs in ``finally``
    blocks, over the error that ended the run; a claim that cannot be released (a full disk) stays, and is taken
    over at once on this host when this process is gone, elsewhere after its lease."""
    try:
        _remove(c.path, c.token, STALE_AFTER)
    except DhcError:
        pass


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
