#!/usr/bin/python3
"""Build the test guest: a Debian kernel and a busybox initramfs (root, Debian packages only).

The guest's /init loads the virtio modules (and the ACPI power button: an
ACPI powerdown request powers the guest off), then every second writes
``herd-counter N`` at offset 0 of the first virtio disk (/dev/vda), flushed
(``conv=fsync``), and only then prints it on the serial console, so tests can
follow the guest from the host: on the serial socket and in the disk file, and
a counter seen on the console is one the disk acknowledged. After a live
migration the counter continues; after a restart it starts again at 1. At boot,
before counting, it records what offset 0 held then as ``herd-boot-found
herd-counter N`` (or ``herd-boot-found nothing``) at offset 4096, and prints
``herd-guest: disk held ...``.

Kernel arguments understood by /init:
  herd.ip=198.51.100.10/24   configure eth0 with this address (optional)
  herd.dirty=N               fill N MiB of memory with random data before counting
                             (the migration benchmark's dirty memory)

Idempotent: the result is cached under /var/cache/herd-test/guest/ (override
with HERD_GUEST_CACHE) and reused while the kernel package and this script are
unchanged. Prints the paths as JSON on the last line:
  {"kernel": ".../vmlinuz", "initrd": ".../initrd.img", "kernel_package": "linux-image-..."}
"""

import gzip
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

CACHE = os.environ.get("HERD_GUEST_CACHE", "/var/cache/herd-test/guest")
BUSYBOX = "/bin/busybox"  # from busybox-static: statically linked
WANTED_MODULES = ("virtio_pci", "virtio_blk", "virtio_net", "virtio_console", "virtio_balloon",
                  "button", "evdev")

INIT = r"""#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
for m in $(cat /etc/modules.order); do
  insmod "/lib/modules/$m" 2>/dev/null
done
ip link set lo up
for arg in $(cat /proc/cmdline); do
  case "$arg" in
    herd.ip=*) addr="${arg#herd.ip=}" ;;
    herd.dirty=*) dirty="${arg#herd.dirty=}" ;;
  esac
done
if [ -n "$addr" ]; then
  ip link set eth0 up && ip addr add "$addr" dev eth0
fi
# herd.dirty=N: fill N MiB of guest memory with random data (migration benchmarks)
if [ -n "$dirty" ]; then
  dd if=/dev/urandom of=/herd-dirty bs=1M count="$dirty" 2>/dev/null
  echo "herd-guest: dirtied $dirty MiB"
fi
# ACPI power button (QMP system_powerdown): power off, so a clean stop can be seen
for dev in /sys/class/input/event*; do
  if [ "$(cat "$dev/device/name" 2>/dev/null)" = "Power Button" ]; then
    (dd if="/dev/input/${dev##*/}" of=/dev/null bs=24 count=1 2>/dev/null &&
     { echo "herd-guest: power button, powering off"; sync; poweroff -f; }) &
  fi
done
# What the disk held at boot (the last counter of the guest that ran on it before), recorded at
# offset 4096 before counting starts: after a failover it says what the new primary's disk held.
if [ -b /dev/vda ]; then
  found=$(dd if=/dev/vda bs=64 count=1 2>/dev/null | tr -dc 'a-z0-9 -' | sed 's/ *$//')
  printf '%-63s\n' "herd-boot-found ${found:-nothing}" | dd of=/dev/vda bs=64 seek=64 count=1 conv=notrunc,fsync 2>/dev/null
  echo "herd-guest: disk held ${found:-nothing}"
fi
echo "herd-guest: init ready"
n=0
while true; do
  n=$((n + 1))
  line="herd-counter $n"
  # written and flushed (fsync: a flush request to the virtual disk) before the console shows
  # it, so a printed counter is one the disk acknowledged
  if [ -b /dev/vda ] && ! printf '%-63s\n' "$line" | dd of=/dev/vda bs=64 count=1 conv=notrunc,fsync 2>/dev/null; then
    echo "herd-guest: writing $line failed"
  else
    echo "$line"
  fi
  sleep 1
done
"""


def run(cmd: list[str], **kwargs) -> str:
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kwargs).stdout


def kernel_package() -> str:
    """The linux-image-6.1.0-N-amd64 that linux-image-amd64 currently depends on."""
    override = os.environ.get("HERD_GUEST_KERNEL_PKG")
    if override:
        return override
    out = run(["apt-cache", "depends", "linux-image-amd64"])
    match = re.search(r"Depends: (linux-image-6\.1\.0-\d+-amd64)\b", out)
    if match:
        return match.group(1)
    names = run(["apt-cache", "search", "--names-only", r"^linux-image-6\.1\.0-[0-9]+-amd64$"]).split("\n")
    found = sorted((line.split()[0] for line in names if line.strip()),
                   key=lambda n: int(n.split("-")[3]))
    if not found:
        sys.exit("build.py: apt-cache offers no linux-image-6.1.0-*-amd64")
    return found[-1]


def module_order(moddir: str) -> list[str]:
    """Wanted modules and their dependencies, dependencies first (from modules.dep)."""
    deps: dict[str, list[str]] = {}
    with open(os.path.join(moddir, "modules.dep"), encoding="utf-8") as handle:
        for line in handle:
            mod, _sep, rest = line.partition(":")
            deps[mod.strip()] = rest.split()
    by_name = {re.sub(r"\.ko(\.xz|\.zst|\.gz)?$", "", os.path.basename(p)).replace("-", "_"): p for p in deps}
    order: list[str] = []

    def visit(path: str) -> None:
        if path in order:
            return
        for dep in deps.get(path, []):
            visit(dep)
        order.append(path)

    for name in WANTED_MODULES:
        if name in by_name:
            visit(by_name[name])
    # virtio_ring before virtio, whatever modules.dep says
    ring = [p for p in order if os.path.basename(p).startswith("virtio_ring.")]
    return ring + [p for p in order if p not in ring]


def decompress(src: str, dst: str) -> None:
    if src.endswith(".xz"):
        data = run_bytes(["xz", "-dc", src])
    elif src.endswith(".zst"):
        data = run_bytes(["zstd", "-dc", src])
    elif src.endswith(".gz"):
        with gzip.open(src, "rb") as handle:
            data = handle.read()
    else:
        with open(src, "rb") as handle:
            data = handle.read()
    with open(dst, "wb") as handle:
        handle.write(data)


def run_bytes(cmd: list[str]) -> bytes:
    return subprocess.run(cmd, check=True, capture_output=True).stdout


def newc_archive(root: str) -> bytes:
    """An initramfs (cpio newc) of ``root``, owned by root; cpio does the format."""
    paths = []
    for base, dirs, files in os.walk(root):
        dirs.sort()
        rel = os.path.relpath(base, root)
        if rel != ".":
            paths.append(rel)
        paths.extend(os.path.join(rel, f) if rel != "." else f for f in sorted(files))
    proc = subprocess.run(["cpio", "--quiet", "-o", "-H", "newc", "-R", "0:0"], cwd=root,
                          input="\n".join(paths).encode() + b"\n", capture_output=True, check=True)
    return proc.stdout


def download(pkg: str) -> str:
    """The package's .deb, downloaded once into CACHE/debs (owned by _apt, which apt uses)."""
    debs = os.path.join(CACHE, "debs")
    os.makedirs(debs, exist_ok=True)
    found = [f for f in os.listdir(debs) if f.startswith(pkg + "_") and f.endswith(".deb")]
    if not found:
        try:
            shutil.chown(debs, user="_apt")
        except (LookupError, OSError):
            pass
        print(f"build.py: downloading {pkg}", file=sys.stderr)
        subprocess.run(["apt-get", "download", "-q", pkg], cwd=debs, check=True, stdout=subprocess.DEVNULL)
        found = [f for f in os.listdir(debs) if f.startswith(pkg + "_") and f.endswith(".deb")]
        for old in os.listdir(debs):  # keep only the current kernel package
            if old.endswith(".deb") and old not in found:
                os.unlink(os.path.join(debs, old))
    return os.path.join(debs, sorted(found)[-1])


def build(pkg: str, stamp: str) -> None:
    os.makedirs(CACHE, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="herd-guest-") as tmp:
        deb = download(pkg)
        extract = os.path.join(tmp, "x")
        run(["dpkg-deb", "-x", deb, extract])
        boot = os.path.join(extract, "boot")
        vmlinuz = [f for f in os.listdir(boot) if f.startswith("vmlinuz-")][0]
        version = vmlinuz[len("vmlinuz-"):]
        moddir = os.path.join(extract, "lib", "modules", version)
        run(["depmod", "-b", extract, version])  # the package does not ship modules.dep

        root = os.path.join(tmp, "initramfs")
        for d in ("bin", "dev", "proc", "sys", "etc", "tmp", "lib/modules"):
            os.makedirs(os.path.join(root, d), exist_ok=True)
        shutil.copy(BUSYBOX, os.path.join(root, "bin", "busybox"))
        os.chmod(os.path.join(root, "bin", "busybox"), 0o755)
        names = []
        for rel in module_order(moddir):
            name = re.sub(r"\.(xz|zst|gz)$", "", os.path.basename(rel))
            decompress(os.path.join(moddir, rel), os.path.join(root, "lib", "modules", name))
            names.append(name)
        with open(os.path.join(root, "etc", "modules.order"), "w", encoding="ascii") as handle:
            handle.write("\n".join(names) + "\n")
        with open(os.path.join(root, "init"), "w", encoding="ascii") as handle:
            handle.write(INIT)
        os.chmod(os.path.join(root, "init"), 0o755)

        archive = newc_archive(root)
        buf = io.BytesIO()
        with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0) as handle:
            handle.write(archive)
        for name, data in (("initrd.img", buf.getvalue()),):
            with open(os.path.join(CACHE, name + ".tmp"), "wb") as handle:
                handle.write(data)
            os.replace(os.path.join(CACHE, name + ".tmp"), os.path.join(CACHE, name))
        shutil.copy(os.path.join(boot, vmlinuz), os.path.join(CACHE, "vmlinuz.tmp"))
        os.replace(os.path.join(CACHE, "vmlinuz.tmp"), os.path.join(CACHE, "vmlinuz"))
        with open(os.path.join(CACHE, "modules.txt"), "w", encoding="ascii") as handle:
            handle.write("\n".join(names) + "\n")
    with open(os.path.join(CACHE, "stamp"), "w", encoding="ascii") as handle:
        handle.write(stamp + "\n")


def main() -> int:
    if os.geteuid() != 0:
        sys.exit("build.py: run as root (apt-get download into the cache)")
    with open(__file__, "rb") as handle:
        script_hash = hashlib.sha256(handle.read()).hexdigest()[:16]
    stamp_path = os.path.join(CACHE, "stamp")
    kernel, initrd = os.path.join(CACHE, "vmlinuz"), os.path.join(CACHE, "initrd.img")
    current = ""
    if os.path.exists(stamp_path):
        with open(stamp_path, encoding="ascii") as handle:
            current = handle.read().strip()
    # Reuse the cache without asking apt when this script did not change; a new
    # kernel package only matters when the cache is rebuilt.
    if not (current.endswith(":" + script_hash) and os.path.exists(kernel) and os.path.exists(initrd)):
        pkg = kernel_package()
        build(pkg, f"{pkg}:{script_hash}")
        current = f"{pkg}:{script_hash}"
    print(json.dumps({"kernel": kernel, "initrd": initrd, "kernel_package": current.split(":", maxsplit=1)[0]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
