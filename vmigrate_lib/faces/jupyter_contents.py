"""JupyterLab's file access, with sealed evidence archives read-only for everyone, root too.

Opening an archived notebook in JupyterLab marks it modified; autosave then
rewrote it and left ``.ipynb_checkpoints/`` in the archive, and ``vmigrate
evidence verify`` failed (issue 14 item 1).  File modes (0400/0500) stop other
users, but root writes anything and JupyterLab runs as root in many labs.  This
contents manager (jupyter_server's default, :class:`AsyncLargeFileManager`, plus a
check) reports every file inside a folder sealed by ``MANIFEST.sha256`` as
``writable: false`` (JupyterLab then shows the notebook read-only, and neither
autosaves it nor creates a checkpoint: its ``canSave`` is false), and refuses any
save, checkpoint, rename or delete there with HTTP 403, whatever the client; listing
checkpoints there finds none (and creates no ``.ipynb_checkpoints/``).

``python -m vmigrate_lib.faces.jupyter_setup`` makes it the environment's contents
manager (``<prefix>/etc/jupyter/jupyter_server_config.d/vmigrate.json``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jupyter_server.services.contents.largefilemanager import AsyncLargeFileManager
from tornado.web import HTTPError

from ..audit.evidence import is_sealed_archive

CLASS_PATH = f"{__name__}.SealedEvidenceContentsManager"


class SealedEvidenceContentsManager(AsyncLargeFileManager):
    """jupyter_server's file manager; paths in sealed evidence are read-only."""

    def _sealed(self, path: str) -> bool:
        return is_sealed_archive(Path(self.root_dir) / path.strip("/"))

    def _refuse(self, path: str, what: str) -> None:
        if self._sealed(path):
            raise HTTPError(403, f"{path} is sealed vmigrate evidence: it cannot be {what} "
                            "(copy the notebook elsewhere to work on it)")

    async def get(self, path: str, content: bool = True, type: str | None = None,
                  format: str | None = None, require_hash: bool = False) -> dict[str, Any]:
        model: dict[str, Any] = await super().get(  # type: ignore[no-untyped-call]
            path, content=content, type=type, format=format, require_hash=require_hash)
        if self._sealed(path):
            model["writable"] = False
        if model.get("type") == "directory" and isinstance(model.get("content"), list):
            for child in model["content"]:
                if isinstance(child, dict) and self._sealed(str(child.get("path", ""))):
                    child["writable"] = False
        return model

    async def save(self, model: dict[str, Any], path: str = "") -> dict[str, Any]:
        self._refuse(path, "saved")
        saved: dict[str, Any] = await super().save(model, path)  # type: ignore[no-untyped-call]
        return saved

    async def create_checkpoint(self, path: str) -> dict[str, Any]:
        self._refuse(path, "checkpointed")
        made: dict[str, Any] = await super().create_checkpoint(path)  # type: ignore[no-untyped-call]
        return made

    async def list_checkpoints(self, path: str) -> list[dict[str, Any]]:
        """None in sealed evidence (jupyter_server's FileCheckpoints would create an
        ``.ipynb_checkpoints/`` folder there just to list it)."""
        if self._sealed(path):
            return []
        found: list[dict[str, Any]] = await super().list_checkpoints(  # type: ignore[no-untyped-call]
            path)
        return found

    async def restore_checkpoint(self, checkpoint_id: str, path: str) -> None:
        self._refuse(path, "restored from a checkpoint")
        await super().restore_checkpoint(checkpoint_id, path)  # type: ignore[no-untyped-call]

    async def delete_checkpoint(self, checkpoint_id: str, path: str) -> None:
        self._refuse(path, "changed")
        await super().delete_checkpoint(checkpoint_id, path)  # type: ignore[no-untyped-call]

    async def delete_file(self, path: str) -> None:
        self._refuse(path, "deleted")
        await super().delete_file(path)  # type: ignore[no-untyped-call]

    async def rename_file(self, old_path: str, new_path: str) -> None:
        self._refuse(old_path, "renamed")
        self._refuse(new_path, "replaced")
        await super().rename_file(old_path, new_path)  # type: ignore[no-untyped-call]
