"""The node side of herd.cluster.volume_group: create a volume group on the given devices or
extend it with new ones; never shrink it, never recreate it, never take a device that holds
data unless told to wipe it, never take another volume group's physical volume. Everything is
checked before the first command runs."""

import json
import os
import stat
from typing import Any, Callable, Dict, List, Optional, Set, Tuple

from .errors import HerdError
from .names import check_vg

LVM_ENV = {'LVM_SUPPRESS_FD_WARNINGS': '1'}

# run(argv, environ_update=None) -> (rc, stdout, stderr): AnsibleModule.run_command
Runner = Callable[..., Tuple[int, str, str]]


class VgError(HerdError):
    """A refusal or a failed command; ``details`` go into the task's result."""

    def __init__(self, message: str, **details: Any):
        super().__init__(message)
        self.details = details


def real(path: str) -> str:
    return os.path.realpath(path)


class Lvm:
    def __init__(self, run: Runner):
        self._run = run

    def run(self, args: List[str], check: bool = True) -> Tuple[int, str, str]:
        rc, out, err = self._run(args, environ_update=LVM_ENV)
        if check and rc != 0:
            raise VgError('%s failed (rc %d): %s' % (' '.join(args), rc, err.strip()), rc=rc, stdout=out, stderr=err)
        return rc, out, err

    def report(self, args: List[str], key: str) -> Tuple[Optional[List[Dict[str, Any]]], str]:
        rc, out, err = self.run(args + ['--reportformat', 'json'], check=False)
        if rc != 0:
            return None, err.strip()
        try:
            return json.loads(out)['report'][0][key], ''
        except (ValueError, KeyError, IndexError):
            return None, 'unexpected output of %s' % ' '.join(args)

    def vg(self, name: str) -> Optional[Dict[str, Any]]:
        rows, _err = self.report(['vgs', '--units', 'b', '--nosuffix', '-o', 'vg_name,lv_count,vg_size,vg_free'],
                                 'vg')
        for row in rows or []:
            if row['vg_name'] == name:
                pvs, _err = self.report(['pvs', '-o', 'pv_name,vg_name', '--select', 'vg_name=%s' % name], 'pv')
                return dict(name=name, lv_count=int(row['lv_count']), size_bytes=int(row['vg_size']),
                            free_bytes=int(row['vg_free']), pvs=sorted(real(p['pv_name']) for p in pvs or []))
        return None

    def pv_vg(self, device: str) -> str:
        """Volume group of the PV on device ('' for an orphan PV), read even if the devices file hides it."""
        rows, _err = self.report(['pvs', '--devices', device, '-o', 'pv_name,vg_name', device], 'pv')
        if rows:
            return rows[0].get('vg_name', '')
        return ''

    def devices_file_enabled(self) -> bool:
        rc, out, _err = self.run(['lvmconfig', '--typeconfig', 'full', 'devices/use_devicesfile'], check=False)
        return rc == 0 and out.strip().endswith('=1')

    def devices_file_entries(self) -> Set[str]:
        _rc, out, _err = self.run(['lvm', 'lvmdevices'], check=False)
        return {real(token.split('=', 1)[1]) for token in out.split() if token.startswith('DEVNAME=')}

    def blkid(self, device: str) -> Dict[str, str]:
        """Signatures on the device: {} when blank, else e.g. {'TYPE': 'ext4', 'UUID': ...}."""
        rc, out, err = self._run(['blkid', '-p', '-o', 'export', device])
        if rc == 2:  # nothing found
            return {}
        if rc != 0:
            raise VgError('blkid -p %s failed (rc %d): %s' % (device, rc, err.strip()))
        values = {}
        for line in out.splitlines():
            key, _sep, value = line.partition('=')
            values[key] = value
        return values


def ensure(params: Dict[str, Any], run: Runner, check_mode: bool) -> Dict[str, Any]:
    """The module's work: ``params`` has name, pvs and wipe. Returns the result (changed, vg,
    commands, diff); raises VgError (nothing changed unless a command failed)."""
    name = check_vg(params['name'])
    if not params['pvs']:
        raise VgError('pvs is empty: give the devices of volume group %s' % name)
    lvm = Lvm(run)
    wanted = block_devices(name, params['pvs'])
    current = lvm.vg(name)
    have = current['pvs'] if current else []
    refuse_shrinking(name, current, have, wanted)
    new = [d for d in wanted if d not in have]
    to_wipe = [d for d in new if needs_wipe(lvm, name, d, params['wipe'])]
    commands: List[List[str]] = []
    if new and lvm.devices_file_enabled():
        listed = lvm.devices_file_entries()
        commands += [['lvm', 'lvmdevices', '--yes', '--adddev', d] for d in new if d not in listed]
    commands += [['wipefs', '-a', d] for d in to_wipe]
    if new:
        commands.append(['pvcreate', '-y'] + new)
        commands.append(['vgextend', name] + new if current else ['vgcreate', name] + new)
    if commands and not check_mode:
        for args in commands:
            lvm.run(args)
        after = lvm.vg(name)
        if after is None or any(d not in after['pvs'] for d in wanted):
            raise VgError('volume group %s does not hold %s after %s' % (name, ', '.join(wanted), commands), vg=after)
    else:
        after = dict(current) if current else dict(name=name, lv_count=0, size_bytes=None, free_bytes=None)
        after['pvs'] = sorted(set(have) | set(wanted))
    return dict(changed=bool(commands), vg=after, commands=commands,
                diff=dict(before=dict(name=name, pvs=have, exists=current is not None),
                          after=dict(name=name, pvs=after['pvs'], exists=True)))


def block_devices(name: str, devices: List[str]) -> List[str]:
    """The devices, resolved, each an existing block device."""
    wanted: List[str] = []
    for device in devices:
        try:
            mode = os.stat(device).st_mode
        except OSError:
            raise VgError('device %s for volume group %s does not exist on this node; nothing was changed'
                          % (device, name)) from None
        if not stat.S_ISBLK(mode):
            raise VgError('%s for volume group %s is not a block device; nothing was changed' % (device, name))
        if real(device) not in wanted:
            wanted.append(real(device))
    return wanted


def refuse_shrinking(name: str, current: Optional[Dict[str, Any]], have: List[str], wanted: List[str]) -> None:
    extra = [d for d in have if d not in wanted]
    if not extra or current is None:
        return
    if not set(have) & set(wanted):
        raise VgError(
            'volume group %s already exists on %s, not on the requested %s; herd never recreates a volume '
            'group (it holds %d logical volume(s)). Fix the device list in the inventory, or remove the '
            'volume group by hand if it really must go' % (name, ', '.join(have), ', '.join(wanted),
                                                           current['lv_count']), vg=current)
    raise VgError(
        'volume group %s holds physical volume(s) %s that are not in the requested device list %s; herd '
        'never shrinks a volume group (it holds %d logical volume(s) whose extents may live there). To remove '
        'a disk, move its extents away (pvmove) and vgreduce it by hand, then update the inventory'
        % (name, ', '.join(extra), ', '.join(wanted), current['lv_count']), vg=current)


def needs_wipe(lvm: Lvm, name: str, device: str, wipe: bool) -> bool:
    """Whether a new device must be wiped first; refuses another volume group's PV, and data
    without ``wipe``."""
    signature = lvm.blkid(device)
    kind = signature.get('TYPE') or signature.get('PTTYPE')
    if signature.get('TYPE') == 'LVM2_member':
        owner = lvm.pv_vg(device)
        if owner and owner != name:
            raise VgError('device %s is a physical volume of volume group %s; herd will not take it into %s '
                          '(not even with wipe). Remove volume group %s first if it is unused'
                          % (device, owner, name, owner))
        return False  # an orphan PV: usable as it is
    if not kind:
        return False
    what = ('a %s filesystem' % kind) if signature.get('TYPE') else ('a %s partition table' % kind)
    if not wipe:
        raise VgError('device %s holds %s (blkid: %s); refusing to use it for volume group %s. Set '
                      'wipe (node_storage_wipe: true) to destroy it; nothing was changed'
                      % (device, what, ' '.join('%s=%s' % kv for kv in sorted(signature.items())), name))
    return True
