"""The agent file on an SSH host: installed privately, checked before every run.

The agent runs as the SSH login (root on ESXi), so the file it runs from must
be one no one else could have written.  It lives in ``<agent_dir>/vmigrate-<user>/``,
a folder the login creates with mode 0700 and must own; ``agent_dir`` is
usually ``/tmp``, writable by every local user, which is why a folder of the
right name made by someone else, or a symlink, is refused (one line) and never
used.  The file is written under an unpredictable temporary name
(``mkstemp``) and renamed into place; every start checks the folder, the
file's owner and mode, and its full SHA-256 before running it.

Check and run refer to the same file: after the check nothing but the login
itself (or root) can replace a file in a 0700 folder it owns, and those could
run code as the login anyway.

Both steps are small scripts run by the host's ``python3`` (the agent needs it
anyway), Python 3.5 syntax (ESXi 6.5 ships 3.5), stdlib only, started by a
plain ``python3 -c '...' args`` that ESXi's busybox ash runs as any sh would
(shared/notes/real-esxi.md 2.3: "The shell is busybox ash"; the digest is
python's hashlib, so no ``sha256sum`` flavour matters).  The install script answers ``present``
or ``need`` on stdout; after ``need`` it reads the agent on stdin.
"""

from __future__ import annotations

import hashlib
import posixpath
import shlex

from ...errors import AgentFileUnsafe, TransportError
from ..sshconfig import SshSettings
from .paramiko_lazy import paramiko

#: Exit status of a remote script that refused the folder or the file.
REFUSED = 97
#: Exit status of the launcher when no agent file is there yet (install it, start again).
NEED = 98

_CHECKS = r'''
import hashlib, os, stat, sys
def refuse(msg):
    sys.stderr.write("vmigrate: refusing " + msg + "\n")
    sys.stderr.flush()
    os._exit(97)
def check_dir(d):
    st = os.lstat(d)
    uid = os.geteuid()
    if not stat.S_ISDIR(st.st_mode):
        refuse("%s: not a directory (a symlink or a file made by someone else)" % d)
    if st.st_uid != uid:
        refuse("%s: owned by uid %d, not by the SSH login (uid %d)" % (d, st.st_uid, uid))
    if st.st_mode & 0o077:
        refuse("%s: mode %o, not 0700" % (d, stat.S_IMODE(st.st_mode)))
def digest_of(p):
    try:
        fd = os.open(p, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except FileNotFoundError:
        return None
    except OSError as exc:
        refuse("%s: cannot open it (%s)" % (p, exc))
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            refuse("%s: not a regular file" % p)
        if st.st_uid != os.geteuid():
            refuse("%s: owned by uid %d, not by the SSH login (uid %d)" % (p, st.st_uid, os.geteuid()))
        if st.st_mode & 0o022:
            refuse("%s: mode %o, writable by others" % (p, stat.S_IMODE(st.st_mode)))
        h = hashlib.sha256()
        while True:
            b = os.read(fd, 1 << 20)
            if not b:
                break
            h.update(b)
        return h.hexdigest()
    finally:
        os.close(fd)
'''

#: argv: path sha256 size.  Makes the private folder, checks it, installs if needed.
INSTALL_SCRIPT = _CHECKS + r'''
import tempfile
path, want, size = sys.argv[1], sys.argv[2], int(sys.argv[3])
d = os.path.dirname(path)
os.umask(0o077)
try:
    os.mkdir(d, 0o700)
except FileExistsError:
    pass
except OSError as exc:
    sys.stderr.write("vmigrate: cannot create %s: %s\n" % (d, exc))
    sys.exit(1)
check_dir(d)
have = digest_of(path)
if have == want:
    sys.stdout.write("present\n")
    sys.exit(0)
sys.stdout.write("need\n")
sys.stdout.flush()
data = b""
while len(data) < size:
    b = sys.stdin.buffer.read(size - len(data))
    if not b:
        break
    data += b
if hashlib.sha256(data).hexdigest() != want:
    sys.stderr.write("vmigrate: the agent arrived incomplete (%d of %d bytes)\n" % (len(data), size))
    sys.exit(1)
fd, tmp = tempfile.mkstemp(prefix=".upload-", dir=d)
try:
    os.write(fd, data)
    os.fsync(fd)
    os.fchmod(fd, 0o600)
finally:
    os.close(fd)
os.rename(tmp, path)
sys.stdout.write("replaced\n" if have else "installed\n")
'''

#: argv: path sha256 agent-args...  Checks folder, file and digest, then runs the agent from
#: its compiled code: cached beside the file (``<file>.<cache tag>.code``, the same checks
#: as the file; tied to its digest and this python's exact version), else compiled from
#: the zip and cached for the next start (a zip's modules are compiled at every import:
#: ~0.1 s of each agent start here, measured).
LAUNCH_SCRIPT = _CHECKS + r'''
import marshal
from importlib.machinery import ModuleSpec
path, want = sys.argv[1], sys.argv[2]
if not os.path.lexists(os.path.dirname(path)):
    sys.exit(98)  # NEED: not installed yet
check_dir(os.path.dirname(path))
have = digest_of(path)
if have is None:
    sys.exit(98)
if have != want:
    refuse("%s: sha256 %s is not the uploaded agent's %s" % (path, have or "(missing)", want))
tag = want + ":" + sys.version
cache = "%s.%s.code" % (path, sys.implementation.cache_tag)
def cached():
    try:
        fd = os.open(cache, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return None
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid() or st.st_mode & 0o022:
            return None
        try:
            got, codes = marshal.loads(f.read())
        except (EOFError, ValueError, TypeError):
            return None
    return codes if got == tag else None
def compiled():
    import tempfile, zipfile
    with zipfile.ZipFile(path) as z:
        codes = dict((n, compile(z.read(n), path + "/" + n, "exec", dont_inherit=True))
                     for n in z.namelist() if n.endswith(".py"))
    try:
        fd, tmp = tempfile.mkstemp(prefix=".code-", dir=os.path.dirname(path))
        with os.fdopen(fd, "wb") as f:
            f.write(marshal.dumps((tag, codes)))
        os.rename(tmp, cache)
    except OSError:
        pass  # runs all the same, compiled again next time
    return codes
codes = cached() or compiled()
class Modules(object):
    def key(self, name):
        base = name.replace(".", "/")
        for key, pkg in ((base + "/__init__.py", True), (base + ".py", False)):
            if key in codes:
                return key, pkg
        return None, False
    def find_spec(self, name, where=None, target=None):
        key, pkg = self.key(name)
        if key is None:
            return None
        return ModuleSpec(name, self, origin=path + "/" + key, is_package=pkg)
    def create_module(self, spec):
        return None
    def exec_module(self, module):
        exec(codes[self.key(module.__name__)[0]], module.__dict__)
sys.meta_path.insert(0, Modules())
sys.argv = [path] + sys.argv[3:]
exec(codes["__main__.py"], {"__name__": "__main__", "__builtins__": __builtins__})
'''


def private_dir(settings: SshSettings) -> str:
    """``<agent_dir>/vmigrate-<user>``: the login's own folder for the agent."""
    return posixpath.join(settings.agent_dir, f"vmigrate-{settings.user}")


def agent_path(settings: SshSettings, digest16: str) -> str:
    return posixpath.join(private_dir(settings), f"vmigrate-agent-{digest16}.pyz")


def launch_command(settings: SshSettings, path: str, sha256: str, root: str) -> str:
    """The remote command that checks the agent file and runs it on ``root``."""
    words = (settings.python, "-c", LAUNCH_SCRIPT, path, sha256, "--root", root)
    return " ".join(shlex.quote(w) for w in words)


def install(t: paramiko.Transport, settings: SshSettings, path: str, data: bytes) -> str:
    """Make sure ``path`` holds ``data`` (private folder, atomic rename); returns what
    the host did: ``present``, ``installed`` or ``replaced``."""
    sha = hashlib.sha256(data).hexdigest()
    cmd = " ".join(shlex.quote(w) for w in (settings.python, "-c", INSTALL_SCRIPT, path, sha,
                                           str(len(data))))
    host = settings.host
    try:
        chan = t.open_session()
    except (OSError, EOFError, paramiko.SSHException) as exc:
        raise TransportError(f"cannot upload the agent to {host}: {exc}", host=host) from exc
    try:
        chan.settimeout(settings.connect_timeout * 4)
        chan.exec_command(cmd)
        out = chan.makefile("rb")
        answer = str(out.readline().decode("utf-8", "replace")).strip()
        if answer == "need":
            chan.sendall(data)
            chan.shutdown_write()
            answer = str(out.readline().decode("utf-8", "replace")).strip()
        rc = chan.recv_exit_status()
        err = chan.makefile_stderr("rb").read().decode("utf-8", "replace").strip()
    except (OSError, EOFError, paramiko.SSHException) as exc:
        raise TransportError(f"cannot upload the agent to {host}: {exc}", host=host) from exc
    finally:
        chan.close()
    if rc == REFUSED:
        raise AgentFileUnsafe(f"{err.removeprefix('vmigrate: ')} on {host}", host=host, path=path)
    if rc != 0 or answer not in ("present", "installed", "replaced"):
        raise TransportError(
            f"cannot upload the agent to {host}:{path}: "
            f"{err.removeprefix('vmigrate: ') or f'exit {rc}'}",
            hint=f"check that {settings.agent_dir} on the host is writable and that "
            f"{settings.python} runs there",
            host=host,
        )
    return answer


__all__ = ["INSTALL_SCRIPT", "LAUNCH_SCRIPT", "NEED", "REFUSED", "agent_path", "install",
           "launch_command", "private_dir"]
