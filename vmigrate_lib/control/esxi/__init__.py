"""The ``esxi`` control plane: a standalone ESXi host over SSH alone (vim-cmd, vmkfstools).

Modules: ``shell`` (argv -> one safely quoted command line over the SSH connection
the data plane uses), ``vimcmd`` (vim-cmd's outputs read strictly), ``host``
(:class:`EsxiHost`).  No pyVmomi: any licence, the free one included.
"""

from __future__ import annotations

from .host import EsxiHost

__all__ = ["EsxiHost"]
