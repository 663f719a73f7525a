"""The file and sharedfile templates: one image file per disk.

Path (as Ganeti): ``<dir>/<instance>/<disk uuid>.<template>.disk<index>``,
with ``.qcow2`` appended for qcow2 disks; ``<dir>`` is the cluster's
``file_storage_dir`` (file) or ``shared_file_storage_dir`` (sharedfile, the
same directory mounted on every node). Raw files are created sparse with the
exact size; files are mode 0600, the instance directory 0700. The storage
directory itself must exist (the storage role creates it, and for sharedfile
it must be the shared mount): a missing one is an error, never created here,
so a node without the shared mount cannot silently get a local copy.

Creating is atomic (written under a temporary name, then linked into place),
so two nodes creating the same shared file never both win and a crash never
leaves a half-sized disk behind.
"""

import json
import os
import re
from typing import Any, Dict, List, Optional

from .. import names
from ..errors import ValidationError
from .base import DiskRequest, StorageContext, StorageError, Template, check_grow, register

MIB = 1024 * 1024
_DISK_FILE = re.compile(r"^([0-9a-f-]{36})\.(file|sharedfile)\.disk([0-9]+)(\.qcow2)?$")


class FileBase(Template):
    name = ""

    def base_dir(self, ctx: StorageContext) -> str:
        raise NotImplementedError

    def _base(self, req: DiskRequest) -> str:
        base = self.base_dir(req.storage)
        if not base:
            key = "file_storage_dir" if self.name == "file" else "shared_file_storage_dir"
            raise ValidationError(f"{self.name} disk of {req.instance}: the cluster has no {key}")
        return base

    def path(self, req: DiskRequest) -> str:
        base = self._base(req)
        directory = os.path.join(base, req.instance)
        stored = req.logical_id.get("path")
        if stored:
            names.check_abs_path(stored, "disk path")
            if os.path.dirname(stored) != directory or not _DISK_FILE.match(os.path.basename(stored)):
                raise ValidationError(f"disk path {stored!r} of {req.instance} is not a {self.name} disk under "
                                      f"{directory}")
            return stored
        suffix = ".qcow2" if req.format == "qcow2" else ""
        return os.path.join(directory, f"{req.uuid}.{self.name}.disk{req.index}{suffix}")

    def _size(self, path: str, fmt: str) -> Optional[int]:
        """Size in MiB (virtual size for qcow2), None when the file does not exist."""
        try:
            st = os.stat(path)
        except FileNotFoundError:
            return None
        if fmt == "qcow2":
            result = self.runner.run(["qemu-img", "info", "-U", "--output=json", "-f", "qcow2", path])
            size = int(json.loads(result.stdout)["virtual-size"])
        else:
            size = st.st_size
        return size // MIB

    def info(self, req: DiskRequest) -> Dict[str, Any]:
        path = self.path(req)
        size = self._size(path, req.format)
        return {"exists": size is not None, "path": path, "size": size, "format": req.format}

    def create(self, req: DiskRequest) -> Dict[str, Any]:
        path = self.path(req)
        logical_id = {"path": path, "format": req.format}
        current = self._size(path, req.format)
        if current is not None:
            if current != req.size:
                raise StorageError(f"disk {req.index} of {req.instance}: {path} already exists with {current} MiB, "
                                   f"not the requested {req.size} MiB")
            return {"changed": False, "path": path, "format": req.format, "logical_id": logical_id}
        base = self._base(req)
        if not os.path.isdir(base):
            raise StorageError(f"{self.name} storage directory {base} does not exist on this node "
                               "(the storage role creates it)")
        directory = os.path.dirname(path)
        try:
            os.mkdir(directory, 0o700)
        except FileExistsError:
            pass
        tmp = os.path.join(directory, f".{os.path.basename(path)}.tmp-{os.getpid()}")
        try:
            if req.format == "qcow2":
                self.runner.run(["qemu-img", "create", "-q", "-f", "qcow2", tmp, f"{req.size}M"])
                os.chmod(tmp, 0o600)
            else:
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                try:
                    os.fchmod(fd, 0o600)
                    os.ftruncate(fd, req.size * MIB)
                    os.fsync(fd)
                finally:
                    os.close(fd)
            try:
                os.link(tmp, path)
            except FileExistsError:
                # another node of the cluster (sharedfile) created it meanwhile
                current = self._size(path, req.format)
                if current != req.size:
                    raise StorageError(f"disk {req.index} of {req.instance}: {path} appeared meanwhile with "
                                       f"{current} MiB, not {req.size} MiB") from None
                return {"changed": False, "path": path, "format": req.format, "logical_id": logical_id}
        finally:
            if os.path.lexists(tmp):
                os.unlink(tmp)
        return {"changed": True, "path": path, "format": req.format, "logical_id": logical_id}

    def remove(self, req: DiskRequest) -> Dict[str, Any]:
        path = self.path(req)
        removed = []
        try:
            os.unlink(path)
            removed.append(path)
        except FileNotFoundError:
            pass
        try:
            os.rmdir(os.path.dirname(path))  # only when empty (seed, UEFI vars, other disks keep it)
        except OSError:
            pass
        return {"changed": bool(removed), "removed": removed}

    def grow(self, req: DiskRequest, new_size: int) -> Dict[str, Any]:
        path = self.path(req)
        current = self._size(path, req.format)
        if current is None:
            raise StorageError(f"disk {req.index} of {req.instance}: {path} does not exist on this node")
        if not check_grow(req, current, new_size):
            return {"changed": False, "old_size": current, "size": current, "path": path}
        if req.format == "qcow2":
            self.runner.run(["qemu-img", "resize", "-q", "-f", "qcow2", path, f"{new_size}M"])
        else:
            os.truncate(path, new_size * MIB)
        return {"changed": True, "old_size": current, "size": new_size, "path": path}

    def assemble(self, req: DiskRequest) -> Dict[str, Any]:
        path = self.path(req)
        if not os.path.isfile(path):
            raise StorageError(f"disk {req.index} of {req.instance}: {path} does not exist on this node")
        return {"changed": False, "path": path, "format": req.format}

    def list(self, ctx: StorageContext) -> List[Dict[str, Any]]:
        base = self.base_dir(ctx)
        found: List[Dict[str, Any]] = []
        if not base or not os.path.isdir(base):
            return found
        for instance in sorted(os.listdir(base)):
            directory = os.path.join(base, instance)
            if not os.path.isdir(directory) or os.path.islink(directory):
                continue
            for entry in sorted(os.listdir(directory)):
                match = _DISK_FILE.match(entry)
                if not match or match.group(2) != self.name:
                    continue
                path = os.path.join(directory, entry)
                fmt = "qcow2" if match.group(4) else "raw"
                try:
                    size: Optional[int] = self._size(path, fmt)
                except (StorageError, ValueError, KeyError):
                    size = None
                found.append({"template": self.name, "instance": instance, "uuid": match.group(1),
                              "index": int(match.group(3)), "path": path, "format": fmt, "size": size})
        return found


@register
class File(FileBase):
    name = "file"

    def base_dir(self, ctx: StorageContext) -> str:
        return ctx.file_storage_dir or ""


@register
class SharedFile(FileBase):
    name = "sharedfile"

    def base_dir(self, ctx: StorageContext) -> str:
        return ctx.shared_file_storage_dir or ""
