"""Creating a disk file the way the ESXi host provisions it: ``vmkfstools -c -d``.

A flat file made by ``ftruncate`` and writes is allocated on write, thin whatever
the source disk was; on VMFS only ``vmkfstools`` (or the API) pre-allocates
(zeroedthick) or pre-zeroes (eagerzeroedthick) it.  ``vmkfstools -c <size> -d <fmt>
<name>.vmdk`` writes the descriptor ``<name>.vmdk`` and its extent
``<name>-flat.vmdk`` (VMware vSphere Storage, "vmkfstools: Virtual Disk Options",
"Supported Disk Formats"); vmigrate writes into the extent and later replaces the
descriptor with the one made from the source's.

Python 3.5 compatible, stdlib only.
"""

import errno
import os
import subprocess

FORMATS = ("thin", "zeroedthick", "eagerzeroedthick")
FLAT_SUFFIX = "-flat.vmdk"


def descriptor_of(flat):
    """``dir/name-flat.vmdk`` -> ``dir/name.vmdk`` (None for another name)."""
    if not flat.endswith(FLAT_SUFFIX):
        return None
    return flat[:-len(FLAT_SUFFIX)] + ".vmdk"


def create_with_vmkfstools(tool, flat, size, fmt):
    """Create ``flat`` (and its descriptor) of ``size`` bytes in format ``fmt``; raises
    OSError (EEXIST when either file exists, EIO with the tool's words on failure)."""
    if fmt not in FORMATS:
        raise ValueError("unknown disk format {!r} (one of {})".format(fmt, ", ".join(FORMATS)))
    descriptor = descriptor_of(flat)
    if descriptor is None:
        raise ValueError("vmkfstools makes <name>-flat.vmdk; cannot make {!r}".format(flat))
    for path in (flat, descriptor):
        if os.path.lexists(path):
            raise OSError(errno.EEXIST, "file exists", path)
    if size % 1024:
        raise ValueError("disk size {} is not a whole number of KiB".format(size))
    argv = [tool, "-c", "{}kb".format(size // 1024), "-d", fmt, descriptor]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    out = proc.communicate()[0].decode("utf-8", "replace").strip()
    if proc.returncode != 0:
        raise OSError(errno.EIO, "vmkfstools -c -d {} failed (exit {}): {}".format(
            fmt, proc.returncode, out[-300:] or "no output"), descriptor)
    st = os.stat(flat)  # FileNotFoundError when the tool made something else
    if st.st_size != size:
        raise OSError(errno.EIO, "vmkfstools made {} of {} bytes, not {}".format(
            flat, st.st_size, size), flat)
    return {"ok": True, "format": fmt, "tool": tool, "descriptor": descriptor}
