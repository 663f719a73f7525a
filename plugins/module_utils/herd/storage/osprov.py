"""OS providers: what goes onto a new instance's disks (runs on the primary node).

- ``noop``: nothing; the disks stay empty (a kernel_path boot, or an
  installer on a CD, fills them).
- ``image``: a local image file (any format ``qemu-img`` reads: raw, qcow2,
  vmdk, vdi ...) converted onto disk 0 with ``qemu-img convert``. The format is
  detected with ``qemu-img info --output=json``; a file qemu-img cannot read,
  or one it can only read as raw bytes without a partition table, filesystem
  or ISO signature, is refused with an error naming the file and what
  qemu-img said (``osparams.image_format: raw`` accepts a raw file as it is).
  An image larger than disk 0 is refused before anything is written.
- ``cloud_init``: optionally an image as above, plus a NoCloud seed ISO
  (volume id ``cidata``; ``user-data``, ``meta-data`` with instance-id and
  local-hostname, and ``network-config`` when given) kept with the instance at
  ``seed_path``, mode 0600 (it can hold a password). The hypervisor attaches
  it as a CD (the instance spec's ``cdrom``).

User data and network config may be given as text (used verbatim) or as a
mapping (written as JSON, which is YAML, after ``#cloud-config``).
"""

import hashlib
import json
import os
import tempfile
from typing import Any, Dict, List, Optional

from .. import names
from ..errors import ValidationError
from .base import Runner, StorageContext, StorageError

OS_TYPES = ("noop", "image", "cloud_init")
IMAGE_FORMATS = ("raw", "qcow2", "vmdk", "vdi", "vhdx", "vpc", "qed")
SEED_NAME = "cloud-init-seed.iso"
MIB = 1024 * 1024

# (offset, bytes) of what a real disk image starts with
_SIGNATURES = (
    (510, b"\x55\xaa", "MBR/boot sector"),
    (512, b"EFI PART", "GPT"),
    (512, b"LABELONE", "LVM physical volume"),
    (1080, b"\x53\xef", "ext2/3/4"),
    (0, b"XFSB", "XFS"),
    (65600, b"_BHRfS_M", "btrfs"),
    (32769, b"CD001", "ISO 9660"),
    (4086, b"SWAPSPACE2", "swap"),
    (0, b"hsqs", "squashfs"),
)


def image_info(runner: Runner, path: str) -> Dict[str, Any]:
    """qemu-img's view of an image: {"format", "virtual_size" (bytes), "signature"}; refuses non-images."""
    names.check_abs_path(path, "image")
    if not os.path.exists(path):
        raise StorageError(f"image {path} does not exist on this node")
    if not os.path.isfile(path):
        raise StorageError(f"image {path} is not a regular file")
    result = runner.run(["qemu-img", "info", "--output=json", path], check=False)
    if result.rc != 0:
        raise StorageError(f"image {path} is not a disk image: qemu-img info says: "
                           f"{(result.stderr or result.stdout).strip()[-1000:] or f'exit {result.rc}'}")
    try:
        info = json.loads(result.stdout)
        fmt = str(info["format"])
        size = int(info["virtual-size"])
    except (ValueError, KeyError, TypeError):
        raise StorageError(f"image {path}: cannot understand qemu-img info output: {result.stdout[:300]!r}") from None
    if fmt not in IMAGE_FORMATS:
        raise StorageError(f"image {path} is {fmt}, not one of the image formats herd installs "
                           f"({', '.join(IMAGE_FORMATS)})")
    check_self_contained(info, path)
    return {"format": fmt, "virtual_size": size, "signature": raw_signature(path) if fmt == "raw" else None}


def _external_files(node: Any, image: str) -> List[str]:
    """Every file name in qemu-img's report (at any depth) that is not the image itself."""
    found: List[str] = []
    if isinstance(node, dict):
        for key, value in node.items():
            # "...-format" keys name a driver, not a file; every other key naming a file counts
            if isinstance(value, str) and "file" in key and not key.endswith("-format"):
                if os.path.realpath(os.path.join(os.path.dirname(image), value)) != os.path.realpath(image):
                    found.append(value)
            else:
                found.extend(_external_files(value, image))
    elif isinstance(node, list):
        for item in node:
            found.extend(_external_files(item, image))
    return found


def check_self_contained(info: Dict[str, Any], path: str) -> None:
    """Refuse an image that makes qemu-img read any file besides itself.

    A backing file, a qcow2 external data file or vmdk extents would let a crafted image copy
    any file of the node (a private key, another instance's volume) into the guest's disk.
    """
    backing = info.get("backing-filename") or info.get("full-backing-filename")
    if backing:
        raise StorageError(f"image {path} has a backing file ({backing}): flatten it first "
                           "with qemu-img convert")
    specific = (info.get("format-specific") or {}).get("data") or {}
    if specific.get("data-file"):
        raise StorageError(f"image {path} has an external data file ({specific['data-file']}): only "
                           "self-contained images are installed; convert it to one file first")
    foreign = _external_files(info, path)
    if foreign:
        raise StorageError(f"image {path} refers to other files {sorted(set(foreign))}: only self-contained "
                           "images are installed; convert it to one file first")


def raw_signature(path: str) -> Optional[str]:
    """What a raw file looks like (partition table, filesystem, ISO), or None."""
    with open(path, "rb") as handle:
        head = handle.read(70000)
    for offset, magic, what in _SIGNATURES:
        if head[offset:offset + len(magic)] == magic:
            return what
    return None


def check_image(runner: Runner, path: str, image_format: Optional[str] = None) -> Dict[str, Any]:
    info = image_info(runner, path)
    if image_format is not None:
        if image_format != info["format"]:
            raise StorageError(f"image {path}: osparams.image_format is {image_format}, qemu-img detects "
                               f"{info['format']}")
    elif info["format"] == "raw" and info["signature"] is None:
        raise StorageError(f"image {path} is not a disk image: qemu-img info reads it only as raw bytes "
                           f"({info['virtual_size']} bytes) and it has no partition table, filesystem or ISO "
                           "signature (set osparams.image_format: raw to use it anyway)")
    if info["virtual_size"] <= 0:
        raise StorageError(f"image {path} is empty")
    return info


def device_size(path: str) -> int:
    """Size in bytes of a file or block device."""
    fd = os.open(path, os.O_RDONLY)
    try:
        return os.lseek(fd, 0, os.SEEK_END)
    finally:
        os.close(fd)


def convert_argv(image: str, image_format: str, target: str, target_format: str) -> List[str]:
    """Write ``image`` into the existing disk ``target`` (-n: keep the target as created)."""
    return ["qemu-img", "convert", "-q", "-n", "-f", image_format, "-O", target_format, image, target]


def install_image(runner: Runner, image: str, target: str, target_format: str = "raw",
                  image_format: Optional[str] = None) -> Dict[str, Any]:
    names.check_abs_path(target, "disk path")
    info = check_image(runner, image, image_format)
    if not os.path.exists(target):
        raise StorageError(f"disk 0 ({target}) does not exist on this node: create and assemble it first")
    if target_format == "qcow2":
        result = runner.run(["qemu-img", "info", "-U", "--output=json", "-f", "qcow2", target])
        capacity = int(json.loads(result.stdout)["virtual-size"])
    else:
        capacity = device_size(target)
    if info["virtual_size"] > capacity:
        raise StorageError(f"image {image} is {_mib(info['virtual_size'])} MiB ({info['format']}), larger than "
                           f"disk 0 ({_mib(capacity)} MiB): grow the disk or use a smaller image")
    runner.run(convert_argv(image, info["format"], target, target_format), timeout=3600)
    return {"changed": True, "image": image, "image_format": info["format"], "target": target,
            "virtual_size": info["virtual_size"]}


def _mib(size: int) -> str:
    return f"{size / MIB:.0f}" if size % MIB == 0 else f"{size / MIB:.1f}"


# ----------------------------------------------------------------- cloud-init

def instance_dir(storage: StorageContext, instance: str, template: str) -> Optional[str]:
    """The instance's own directory on a node, keyed by its name: its file or sharedfile disks
    and its cloud-init seed (and the sharedfile UEFI variables). None without a storage directory."""
    names.check_instance_name(instance)
    base = storage.shared_file_storage_dir if template == "sharedfile" else storage.file_storage_dir
    return os.path.join(base, instance) if base else None


def rename_instance_dir(storage: StorageContext, old: str, new: str, template: str) -> Dict[str, Any]:
    """Rename the instance's directory (instance rename). Idempotent: unchanged when ``old`` is
    gone and ``new`` is there (done before) or when neither exists (nothing kept by name)."""
    source = instance_dir(storage, old, template)
    target = instance_dir(storage, new, template)
    if source is None or target is None:
        return {"changed": False, "from": source, "to": target}
    if os.path.lexists(source):
        if os.path.lexists(target):
            raise StorageError(f"cannot rename {source} to {target}: {target} exists already")
        if os.path.islink(source) or not os.path.isdir(source):
            raise StorageError(f"refusing to rename {source}: it is not a directory")
        os.rename(source, target)
        return {"changed": True, "from": source, "to": target}
    return {"changed": False, "from": source, "to": target}


def seed_path(storage: StorageContext, instance: str, template: str) -> str:
    """Where the instance's seed lives: with its sharedfile disks (so every node sees it),
    otherwise under the node's file storage directory."""
    names.check_instance_name(instance)
    base = storage.shared_file_storage_dir if template == "sharedfile" else storage.file_storage_dir
    if not base:
        raise ValidationError(f"instance {instance}: no {'shared_' if template == 'sharedfile' else ''}"
                              "file_storage_dir for the cloud-init seed")
    return os.path.join(base, instance, SEED_NAME)


def seed_files(instance: str, instance_id: str, osparams: Dict[str, Any]) -> Dict[str, str]:
    """The NoCloud files: {"user-data", "meta-data", "network-config"?} as text."""
    hostname = osparams.get("hostname") or instance
    names.check_hostname(hostname, "cloud-init hostname")
    keys = osparams.get("ssh_authorized_keys") or []
    if isinstance(keys, str):
        keys = [keys]
    if not isinstance(keys, list) or not all(isinstance(k, str) and k.strip() and "\n" not in k.strip()
                                             for k in keys):
        raise ValidationError("osparams.ssh_authorized_keys must be a list of single-line public keys")
    keys = [k.strip() for k in keys]
    password = osparams.get("password")
    if password is not None and (not isinstance(password, str) or not password):
        raise ValidationError("osparams.password must be a non-empty string")
    meta: Dict[str, Any] = {"instance-id": instance_id, "local-hostname": hostname}
    if keys:
        meta["public-keys"] = keys
    user_data = osparams.get("user_data")
    generated: Dict[str, Any] = {"hostname": hostname.split(".")[0], "fqdn": hostname,
                                 "preserve_hostname": False}
    if keys:
        generated["ssh_authorized_keys"] = keys
    if password:
        generated.update({"password": password, "chpasswd": {"expire": False}, "ssh_pwauth": True})
    if user_data is None:
        user_text = "#cloud-config\n" + json.dumps(generated, indent=2, sort_keys=True) + "\n"
    elif isinstance(user_data, dict):
        merged = dict(generated)
        merged.update(user_data)
        user_text = "#cloud-config\n" + json.dumps(merged, indent=2, sort_keys=True) + "\n"
    elif isinstance(user_data, str) and user_data.strip():
        user_text = user_data if user_data.endswith("\n") else user_data + "\n"
    else:
        raise ValidationError("osparams.user_data must be text (cloud-config, a script ...) or a mapping")
    files = {"user-data": user_text, "meta-data": json.dumps(meta, indent=2, sort_keys=True) + "\n"}
    network = osparams.get("network_config")
    if isinstance(network, dict):
        files["network-config"] = json.dumps(network, indent=2, sort_keys=True) + "\n"
    elif isinstance(network, str) and network.strip():
        files["network-config"] = network if network.endswith("\n") else network + "\n"
    elif network is not None:
        raise ValidationError("osparams.network_config must be a mapping (network config v1/v2) or YAML text")
    return files


def genisoimage_argv(output: str, files: List[str]) -> List[str]:
    return ["genisoimage", "-quiet", "-output", output, "-volid", "cidata", "-joliet", "-rock", *files]


def create_seed(runner: Runner, path: str, files: Dict[str, str]) -> Dict[str, Any]:
    """Write the seed ISO (0600) at ``path``; unchanged when built from the same content."""
    names.check_abs_path(path, "seed path")
    digest = hashlib.sha256(json.dumps(files, sort_keys=True).encode("utf-8")).hexdigest()
    stamp = path + ".sha256"
    if os.path.exists(path):
        try:
            with open(stamp, encoding="ascii") as handle:
                if handle.read().strip() == digest:
                    return {"changed": False, "path": path}
        except OSError:
            pass
    directory = os.path.dirname(path)
    parent = os.path.dirname(directory)
    if not os.path.isdir(parent):
        raise StorageError(f"file storage directory {parent} does not exist on this node "
                           "(the storage role creates it)")
    os.makedirs(directory, mode=0o700, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".seed-", dir=directory) as tmp:
        sources = []
        for name in sorted(files):
            source = os.path.join(tmp, name)
            fd = os.open(source, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(files[name])
            sources.append(source)
        output = os.path.join(tmp, SEED_NAME)
        runner.run(genisoimage_argv(output, sources))
        os.chmod(output, 0o600)
        os.replace(output, path)
    fd = os.open(stamp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(digest + "\n")
    return {"changed": True, "path": path}


def remove_seed(path: str) -> Dict[str, Any]:
    removed = []
    for candidate in (path, path + ".sha256"):
        try:
            os.unlink(candidate)
            removed.append(candidate)
        except FileNotFoundError:
            pass
    try:
        os.rmdir(os.path.dirname(path))  # only when nothing else of the instance is left there
    except OSError:
        pass
    return {"changed": bool(removed), "removed": removed}
