"""The diskless template: nothing to create; any disk request is an error."""

from typing import Any, Dict

from .base import DiskRequest, StorageError, Template, register


@register
class Diskless(Template):
    name = "diskless"

    def _refuse(self, req: DiskRequest) -> Dict[str, Any]:
        raise StorageError(f"instance {req.instance} is diskless: it has no disk {req.index}")

    def create(self, req: DiskRequest) -> Dict[str, Any]:
        return self._refuse(req)

    def grow(self, req: DiskRequest, new_size: int) -> Dict[str, Any]:
        return self._refuse(req)

    def assemble(self, req: DiskRequest) -> Dict[str, Any]:
        return self._refuse(req)

    def remove(self, req: DiskRequest) -> Dict[str, Any]:
        return {"changed": False, "removed": []}

    def info(self, req: DiskRequest) -> Dict[str, Any]:
        return {"exists": False, "path": None, "size": None}
