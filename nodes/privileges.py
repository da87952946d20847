"""Running the nodes unprivileged: the system user `geoplat up` drops to when started as root.

`make install` creates the user (`useradd --system`, no home, no shell) and lets it traverse the
checkout's and the interpreter's parent directories. As root, the supervisor starts each node's
process group (nginx master and workers, uvicorn) through `setpriv` as that user, and hands it
the node's directory under var/nodes. A non-root operator's nodes run as the operator.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

RUN_USER = os.environ.get("GEOPLAT_USER", "geoplat")
SETPRIV = shutil.which("setpriv") or "/usr/bin/setpriv"


class PrivilegeError(RuntimeError):
    """The unprivileged user is missing or cannot reach what the nodes need."""


def run_user() -> pwd.struct_passwd | None:
    """The user node processes must run as; None when we are not root (no drop)."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(RUN_USER)
    except KeyError:
        raise PrivilegeError(
            f"running as root, the nodes drop to the unprivileged system user {RUN_USER!r}, "
            "which does not exist: run `make install` (or `useradd --system --user-group "
            f"--no-create-home --shell /usr/sbin/nologin {RUN_USER}`)") from None


def drop_command(user: pwd.struct_passwd, *, low_port: bool = False) -> list[str]:
    """A prefix that execs the rest of a command line as `user` (same pid, so the process
    group the supervisor stops stays the same). `low_port` keeps only the capability to bind
    ports below 1024, for nginx on e.g. :80."""
    cmd = [SETPRIV, f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--clear-groups"]
    if low_port:
        cmd += ["--inh-caps=+net_bind_service", "--ambient-caps=+net_bind_service"]
    return [*cmd, "--"]


def own_tree(path: Path, user: pwd.struct_passwd) -> None:
    """Give `path` and everything under it to `user` (symlinks themselves, never their targets)."""
    if not path.exists():
        return
    uid, gid = user.pw_uid, user.pw_gid
    todo = [path]
    for root, dirs, files in os.walk(path):
        todo += [Path(root) / n for n in dirs + files]
    for p in todo:
        st = p.lstat()
        if st.st_uid != uid or st.st_gid != gid:
            os.chown(p, uid, gid, follow_symlinks=False)


def check_access(user: pwd.struct_passwd, project: Path, reachable: list[Path]) -> None:
    """Fail early, with what to do, unless `user` can run the code (this interpreter, its
    packages, the checkout) and reach `reachable` (files read, directories entered)."""
    code = ("import os, sys, uvicorn, starlette, pygeoapi\n"
            "bad = [p for p in sys.argv[1:] if not os.access(p, os.X_OK if os.path.isdir(p) "
            "else os.R_OK)]\n"
            "sys.exit('cannot reach ' + ', '.join(bad) if bad else 0)\n")
    paths = [project / "nodes" / "asgi.py", *reachable]
    # exec'd from a shell, as the node's command is (a direct exec from setpriv got through a
    # parent directory that a shell's exec could not)
    res = subprocess.run([*drop_command(user), "/bin/sh", "-c", 'exec "$@"', "geoplat-check",
                          sys.executable, "-c", code, *map(str, paths)],
                         check=False, capture_output=True, text=True, cwd="/", timeout=60,
                         env={**os.environ, "HOME": "/"})
    if res.returncode != 0:
        why = (res.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise PrivilegeError(
            f"the unprivileged user {user.pw_name!r} cannot run the nodes from {project}: {why}. "
            "It needs to read the checkout, the venv and the Python interpreter, and to enter "
            "every parent directory of them and of var/: run `make install` as root (it grants "
            f"that with `setfacl -m u:{user.pw_name}:x` on each parent), or move the checkout.")


def drop_self(user: pwd.struct_passwd) -> None:
    """Become `user` for good (the rest of this process: a forked CLI command writing var/)."""
    os.setgroups([])
    os.setgid(user.pw_gid)
    os.setuid(user.pw_uid)


def stage_for(user: pwd.struct_passwd, source: Path) -> Path:
    """A private copy of `source` that `user` can read (root may read what it cannot)."""
    tmp = Path(tempfile.mkdtemp(prefix="geoplat-stage-"))
    dest = tmp / source.name
    shutil.copyfile(source, dest)
    for p in (tmp, dest):
        os.chown(p, user.pw_uid, user.pw_gid)
    os.chmod(dest, 0o600)
    return dest
