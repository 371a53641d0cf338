"""Exec shim for Run Command: the command's group dies with the daemon, even after `kill -9`."""

# Run as `python -I -S _command_guard.py DAEMON_PID EXECUTABLE ARG0 [ARG...]`, already the leader
# of a new session and process group (the daemon starts it with start_new_session=True). Never
# imported by the daemon: it runs in a fresh single-threaded interpreter, stdlib only.
#
# Why a shim and not the alternatives:
# - `preexec_fn` calling prctl(PR_SET_PDEATHSIG) runs Python between fork and exec in a process
#   that has threads (aiosqlite, the child watcher, Call Python's pool): a lock held by another
#   thread at fork time deadlocks the child. And PDEATHSIG fires when the *thread* that forked
#   exits, not the process.
# - `setpriv --pdeathsig KILL` (util-linux) is safe, but kills only the direct child: a grandchild
#   (`sh -c 'a & b'`) survives the daemon. It is also not installed everywhere.
# So this shim forks once. The parent execs the command, which keeps the pid the daemon knows, its
# own exit status and signals, and leads the process group. The child becomes a small watcher in
# a group of its own, holding a pidfd of the daemon: when the daemon dies while anything of the
# command's group is alive, however it dies, the watcher SIGKILLs the whole group. Once the group
# is gone the watcher exits.

from __future__ import annotations

import os
import select
import signal
import sys
import time

# Exit code when the command could not be executed (as sh reports it).
CANNOT_EXECUTE = 126
# Exit code when the daemon is gone before the command started: nothing must run then.
ORPHANED = 125
# How often the watcher looks whether the command's group is gone, once the command has exited.
LINGER_POLL_MS = 200


def _pidfd(pid: int) -> int | None:
    """A pidfd for `pid`, or None where pidfds are unavailable (Linux < 5.3)."""
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):
        return None


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # a member that changed its user is still a member
        pass
    return True


def _parent_of(pid: int) -> int | None:
    """The parent pid of `pid` from /proc (None when it is gone)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    # The command name may hold spaces and parentheses: the fields follow the last ")".
    return int(stat[stat.rindex(b")") + 2 :].split()[1])


def _watch(daemon: int, daemon_fd: int | None, leader: int) -> None:
    """Return once the command's group is gone; if the daemon dies first, kill the group."""
    if daemon_fd is None:
        # Without pidfds: poll who the command's parent is. The daemon's pid alone could be
        # reused once it died; the command being reparented cannot be mistaken.
        while _group_alive(leader):
            parent = _parent_of(leader)
            if parent is not None and parent != daemon:
                os.killpg(leader, signal.SIGKILL)
                return
            time.sleep(LINGER_POLL_MS / 1000)
        return
    poller = select.poll()
    poller.register(daemon_fd, select.POLLIN)
    leader_fd = _pidfd(leader)
    # Valid only if the command is still our parent after opening it (else the pid may have
    # been reused): then wait for whichever ends first without polling.
    if leader_fd is not None and os.getppid() == leader:
        poller.register(leader_fd, select.POLLIN)
        ready = {fd for fd, _ in poller.poll()}
        if daemon_fd in ready:
            os.killpg(leader, signal.SIGKILL)
            return
        poller.unregister(leader_fd)
    # The command has exited; what it left in its group is being ended by the daemon, unless
    # the daemon dies meanwhile.
    while _group_alive(leader):
        if poller.poll(LINGER_POLL_MS):
            os.killpg(leader, signal.SIGKILL)
            return


def _original_environment() -> dict[bytes, bytes] | None:
    """The environment exactly as the daemon gave it.

    Python changes its own at start-up (PEP 538 sets LC_CTYPE=C.UTF-8 under the C locale), and
    `-I` ignores PYTHONCOERCECLOCALE; /proc/self/environ still holds what exec received.
    """
    try:
        with open("/proc/self/environ", "rb") as f:
            raw = f.read()
    except OSError:
        return None
    env: dict[bytes, bytes] = {}
    for item in raw.split(b"\0"):
        name, sep, value = item.partition(b"=")
        if sep and name:
            env[name] = value
    return env


def main(argv: list[str]) -> None:
    daemon, executable, args = int(argv[1]), argv[2], argv[3:]
    daemon_fd = _pidfd(daemon)
    # The pidfd names our parent only if it still is our parent after opening it.
    if os.getppid() != daemon:
        os._exit(ORPHANED)
    # Only stdin, stdout and stderr go on (and our pidfd, for the watcher): an event loop that
    # does not close inherited descriptors (uvloop) hands over copies of the output pipes, and a
    # watcher holding those would keep the daemon from seeing the output end.
    limit = os.sysconf("SC_OPEN_MAX") if hasattr(os, "sysconf") else 65536
    if daemon_fd is None:
        os.closerange(3, limit)
    else:
        os.closerange(3, daemon_fd)
        os.closerange(daemon_fd + 1, limit)
    leader = os.getpid()
    # Until the watcher has left the group, a SIGTERM to the group must not take it away; the
    # command gets the default back below, before exec.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if os.fork() == 0:
        # The watcher leaves the command's group, so the daemon's "is anything of the command
        # left?" (killpg 0) does not count it, and the group's SIGTERM (a timeout) does not
        # reach it: it guards the group through the grace period too.
        os.setpgid(0, 0)
        # Off the command's pipes: the daemon reads them to their end-of-file.
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        if null > 2:
            os.close(null)
        try:
            _watch(daemon, daemon_fd, leader)
        finally:
            os._exit(0)
    if daemon_fd is not None:
        os.close(daemon_fd)
    # Python ignores SIGPIPE and SIGXFSZ (and we SIGTERM); an ignored signal stays ignored across
    # exec, and `producer | head` in the command must end the producer as it does in a shell.
    for sig in (signal.SIGPIPE, signal.SIGXFSZ, signal.SIGTERM):
        signal.signal(sig, signal.SIG_DFL)
    env = _original_environment()
    try:
        if env is None:
            os.execv(executable, args)  # noqa: S606 - no shell on purpose: argv as given
        os.execve(executable, args, env)  # noqa: S606
    except OSError as exc:
        os.write(2, f"cronstack: cannot execute {executable}: {exc.strerror}\n".encode())
        os._exit(CANNOT_EXECUTE)


if __name__ == "__main__":
    main(sys.argv)
