#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: herd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: node_network
short_description: Bridges for instances, moving a port's address onto its bridge, and the secondary network
version_added: 0.1.0
description:
  - "Creates each bridge in I(bridges) with its physical port; by default the port's global addresses and its
    routes (the default route included) move onto the bridge. All live changes of one run go to the kernel in one
    C(ip -batch) (and one C(bridge -batch) for VLANs), so the management connection over that port survives: the
    bridge is created with the port's MAC address, gets the address before the port loses it, and the routes are
    replaced, not deleted and re-added."
  - An existing bridge whose MAC address differs from its port's (set by udev's MAC policy or by hand) gets the
    port's MAC back.
  - C(vlan_aware) bridges get C(vlan_filtering 1) and exactly the allowed VLANs (I(vlans)) tagged on the port;
    untagged traffic stays on the port's PVID (VLAN 1).
  - An instance-only bridge (I(instance_only)) carries no host address; its port must not carry one either.
  - The secondary network (replication and migration) is an address on a dedicated interface.
  - Persists everything as Debian ifupdown stanzas in I(persist_dir) (one C(herd-<name>) file per bridge or
    interface).
  - "Validates everything before changing anything - interface names, that every port exists, addresses (netaddr,
    strict: a host address with a prefix length), VLAN ids (1-4094) - and fails with the list of problems."
author: herd contributors (@herd-cluster)
requirements:
  - iproute2 (C(ip), C(bridge)) and python3-netaddr on the node
attributes:
  check_mode:
    support: full
    description: Validates and returns the C(ip)/C(bridge) batch and the files it would write.
  diff_mode:
    support: full
    description: The persisted files before and after.
options:
  bridges:
    description: Bridges to set up.
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: Bridge name, for example C(br0).
        type: str
        required: true
      port:
        description: Physical port enslaved to the bridge, for example C(eth0). Omit for a bridge without port.
        type: str
      addresses:
        description:
          - Host addresses of the bridge (C(198.51.100.11/24)). When empty and I(instance_only) is false, the port's
            current global addresses (or, on later runs, the bridge's) are used.
        type: list
        elements: str
        default: []
      gateway:
        description: Default gateway on the bridge. When omitted, the port's (or bridge's) default route is kept.
        type: str
      instance_only:
        description: The bridge carries instance traffic only, no host address.
        type: bool
        default: false
      vlan_aware:
        description: Make the bridge VLAN-aware (C(vlan_filtering 1)).
        type: bool
        default: false
      vlans:
        description:
          - VLANs allowed (tagged) on the port of a VLAN-aware bridge; ids 1-4094, or ranges like C(100-110).
        type: list
        elements: raw
        default: []
      mtu:
        description: MTU of the bridge and its port.
        type: int
  secondary:
    description: The secondary (replication/migration) network address on a dedicated interface.
    type: dict
    suboptions:
      interface:
        description: The interface, for example C(eth1).
        type: str
        required: true
      address:
        description: Address with prefix length, for example C(203.0.113.11/24).
        type: str
        required: true
  persist:
    description: Write ifupdown stanzas so the configuration survives a reboot.
    type: bool
    default: true
  persist_dir:
    description: Directory of the ifupdown stanzas.
    type: path
    default: /etc/network/interfaces.d
  disable_port_stanzas:
    description:
      - Comment out (prefix C(#herd# )) the stanzas of the bridge ports and of the secondary interface in
        I(interfaces_file), which would otherwise give the port its address back at boot. With C(false), only warn.
    type: bool
    default: true
  interfaces_file:
    description: The main ifupdown file (it must C(source) I(persist_dir)).
    type: path
    default: /etc/network/interfaces
'''

EXAMPLES = r'''
- name: br0 on eth0 (address moved), secondary network on eth1
  herd.cluster.node_network:
    bridges:
      - name: br0
        port: eth0
    secondary:
      interface: eth1
      address: 203.0.113.11/24

- name: VLAN-aware instance-only bridge on a dedicated port
  herd.cluster.node_network:
    bridges:
      - name: br1
        port: eth2
        instance_only: true
        vlan_aware: true
        vlans: [10, 20, "100-110"]
'''

RETURN = r'''
ip_batch:
  description: The C(ip -batch) commands run (or that would run).
  returned: always
  type: list
  elements: str
bridge_batch:
  description: The C(bridge -batch) commands run (or that would run).
  returned: always
  type: list
  elements: str
files:
  description: Persisted files written (or that would be written).
  returned: always
  type: list
  elements: str
bridges:
  description: Per bridge, its port, addresses and VLANs after the run.
  returned: always
  type: list
  elements: dict
secondary:
  description: The secondary interface as requested (its name and address), or null when none was given.
  returned: always
  type: dict
'''

import json
import os
import re
import tempfile

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

try:
    import netaddr
    HAS_NETADDR = True
except ImportError:
    HAS_NETADDR = False

IFNAME_RE = re.compile(r'[A-Za-z0-9_][A-Za-z0-9_.-]{0,14}')
HEADER = '# Managed by herd.cluster.node_network; changes are overwritten.\n'


class Invalid(Exception):
    pass


def check_address(value, what):
    """A host address with prefix length, strictly (no '10/8', no '1.2.3/24', no '300.1.1.1/24')."""
    if not isinstance(value, str) or '/' not in value:
        raise Invalid('%s %r is not an address with a prefix length (like 198.51.100.11/24)' % (what, value))
    addr, _sep, prefix = value.partition('/')
    try:
        ip = netaddr.IPAddress(addr, flags=netaddr.INET_PTON)
    except (netaddr.AddrFormatError, ValueError, TypeError):
        raise Invalid('%s %r is not an address: %r is not a valid IPv4 or IPv6 address' % (what, value, addr))
    limit = 32 if ip.version == 4 else 128
    if not prefix.isdigit() or not 0 < int(prefix) <= limit:
        raise Invalid('%s %r has an invalid prefix length %r (1-%d)' % (what, value, prefix, limit))
    net = netaddr.IPNetwork(value)
    if ip.version == 4 and net.prefixlen < 31 and ip in (net.network, net.broadcast):
        raise Invalid('%s %r is the network or broadcast address of %s, not a host address' % (what, value, net.cidr))
    return '%s/%d' % (ip, net.prefixlen)


def check_gateway(value, what):
    try:
        return str(netaddr.IPAddress(value, flags=netaddr.INET_PTON))
    except (netaddr.AddrFormatError, ValueError, TypeError):
        raise Invalid('%s %r is not an IP address' % (what, value))


def parse_vlans(values, what):
    vids = set()
    for value in values:
        text = str(value).strip()
        match = re.fullmatch(r'(\d+)(?:-(\d+))?', text)
        if not match:
            raise Invalid('%s: %r is not a VLAN id or range (like 10 or 100-110)' % (what, value))
        low = int(match.group(1))
        high = int(match.group(2) or low)
        for vid in (low, high):
            if not 1 <= vid <= 4094:
                raise Invalid('%s: VLAN id %d is out of range (1-4094)' % (what, vid))
        if low > high:
            raise Invalid('%s: VLAN range %r is reversed' % (what, text))
        vids.update(range(low, high + 1))
    return vids


def ranges(vids):
    """[10, 11, 12, 20] -> ['10-12', '20']"""
    out = []
    for vid in sorted(vids):
        if out and out[-1][1] == vid - 1:
            out[-1][1] = vid
        else:
            out.append([vid, vid])
    return ['%d' % a if a == b else '%d-%d' % (a, b) for a, b in out]


class Net(object):
    def __init__(self, module):
        self.module = module

    def json(self, args):
        rc, out, err = self.module.run_command(args)
        if rc != 0:
            self.module.fail_json(msg='%s failed: %s' % (' '.join(args), err.strip()))
        return json.loads(out or '[]')

    def links(self):
        return dict((link['ifname'], link) for link in self.json(['ip', '-d', '-j', 'link', 'show']))

    def addresses(self, dev):
        result = []
        for link in self.json(['ip', '-j', 'addr', 'show', 'dev', dev]):
            for info in link.get('addr_info', []):
                if info.get('scope') == 'global':
                    result.append('%s/%d' % (info['local'], info['prefixlen']))
        return result

    def routes(self, dev):
        """Non-kernel routes on dev, both families: [{'dst':..., 'gateway':..., 'metric':...}]."""
        result = []
        for family in ('-4', '-6'):
            for route in self.json(['ip', family, '-j', 'route', 'show', 'dev', dev]):
                if route.get('protocol') == 'kernel' or route.get('dst', '').startswith('fe80'):
                    continue
                if not route.get('gateway') and route.get('dst') == 'default':
                    continue
                result.append(dict(dst=route.get('dst', 'default'), gateway=route.get('gateway'),
                                   metric=route.get('metric'), family=family))
        return result

    def port_vlans(self, port):
        rc, out, err = self.module.run_command(['bridge', '-j', 'vlan', 'show', 'dev', port])
        if rc != 0:
            return set(), None
        data = json.loads(out or '[]')
        entries = []
        if isinstance(data, dict):  # very old iproute2: {"eth0": [...]}
            entries = data.get(port, [])
        else:
            for item in data:
                if item.get('ifname') == port:
                    entries = item.get('vlans', [])
        vids, pvid = set(), None
        for entry in entries:
            low = entry['vlan']
            high = entry.get('vlanEnd', low)
            if 'PVID' in entry.get('flags', []):
                pvid = low
            vids.update(range(low, high + 1))
        return vids, pvid


def stanza_bridge(bridge, port, addresses, gateway, routes):
    """The bridge's ifupdown stanza, made only of ip/bridge commands: ifupdown alone knows no
    bridge options (bridge_ports needs bridge-utils' hooks, which herd's nodes do not have),
    so the bridge comes back at boot with what every node has (iproute2)."""
    name = bridge['name']
    lines = [HEADER]
    if port:
        lines.append('iface %s inet manual\n' % port)
        if bridge.get('mtu'):
            lines.append('    mtu %d\n' % bridge['mtu'])
        lines.append('\n')
    lines.append('auto %s\n' % name)
    v4 = [a for a in addresses if ':' not in a]
    v6 = [a for a in addresses if ':' in a]
    families = []
    if v4 or not v6:
        families.append(('inet', v4))
    if v6:
        families.append(('inet6', v6))
    for index, (family, addrs) in enumerate(families):
        method = 'static' if addrs else 'manual'
        lines.append('iface %s %s %s\n' % (name, family, method))
        for addr in addrs:
            lines.append('    address %s\n' % addr)
        gw = gateway if gateway and (':' in gateway) == (family == 'inet6') else None
        if gw and addrs:
            lines.append('    gateway %s\n' % gw)
        if index == 0:
            # created with its port's MAC, as the live run does (udev's MAC policy leaves an
            # address given at creation alone); an existing bridge (ifup after the module) is kept
            create = 'ip link add name %s%s type bridge stp_state 0 forward_delay 0%s' % (
                name, ' address $(cat /sys/class/net/%s/address)' % port if port else '',
                ' vlan_filtering 1' if bridge['vlan_aware'] else '')
            lines.append('    pre-up ip link show dev %s >/dev/null 2>&1 || %s\n' % (name, create))
            if port:
                if bridge.get('mtu'):
                    lines.append('    pre-up ip link set dev %s mtu %d\n' % (port, bridge['mtu']))
                lines.append('    pre-up ip link set dev %s master %s\n' % (port, name))
                lines.append('    pre-up ip link set dev %s up\n' % port)
                if bridge['vlan_aware']:
                    for item in ranges(bridge['vids'] - {1}):
                        lines.append('    pre-up bridge vlan add dev %s vid %s\n' % (port, item))
            if bridge.get('mtu'):
                lines.append('    mtu %d\n' % bridge['mtu'])
            for route in routes:
                if route['dst'] != 'default':
                    lines.append('    up ip %s route replace %s%s dev %s\n' % (
                        route['family'], route['dst'], ' via %s' % route['gateway'] if route['gateway'] else '',
                        name))
            lines.append('    post-down ip link del dev %s\n' % name)
    return ''.join(lines)


def stanza_secondary(interface, address):
    family = 'inet6' if ':' in address else 'inet'
    return '%sauto %s\niface %s %s static\n    address %s\n' % (HEADER, interface, interface, family, address)


STANZA_RE = re.compile(r'^\s*(iface|auto|allow-\S+|mapping|source|source-directory|rename)(\s|$)')
MARK = '#herd# '


def comment_out(text, names):
    """Comment out the stanzas of names (and drop them from auto/allow- lines); (new text, changed)."""
    out, in_iface, changed = [], False, False
    for line in text.splitlines(True):
        if STANZA_RE.match(line):
            words = line.split()
            keyword, rest = words[0], words[1:]
            in_iface = False
            if keyword == 'iface' and rest and rest[0] in names:
                in_iface, changed = True, True
                out.append(MARK + line)
                continue
            if (keyword == 'auto' or keyword.startswith('allow-')) and any(r in names for r in rest):
                changed = True
                out.append(MARK + line)
                keep = [r for r in rest if r not in names]
                if keep:
                    out.append('%s %s\n' % (keyword, ' '.join(keep)))
                continue
            out.append(line)
            continue
        if in_iface and line.strip() and not line.lstrip().startswith('#'):
            changed = True
            out.append(MARK + line)
            continue
        out.append(line)
    return ''.join(out), changed


def read(path):
    try:
        with open(path) as handle:
            return handle.read()
    except (IOError, OSError):
        return None


def write_atomic(path, text):
    directory = os.path.dirname(path)
    if not os.path.isdir(directory):
        os.makedirs(directory, 0o755)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix='.herd-')
    with os.fdopen(fd, 'w') as handle:
        handle.write(text)
    os.chmod(tmp, 0o644)
    os.rename(tmp, path)


def validate(params, links):
    """All problems at once, before anything is touched."""
    problems = []
    bridges = []
    names = set()
    for index, raw in enumerate(params['bridges']):
        what = 'bridges[%d]' % index
        bridge = dict(raw)
        try:
            name = bridge['name']
            if not isinstance(name, str) or not IFNAME_RE.fullmatch(name):
                raise Invalid('%s: bridge name %r is not a valid interface name (at most 15 of letters, digits, '
                              '_.-)' % (what, name))
            what = 'bridge %s' % name
            if name in names:
                raise Invalid('%s is given twice' % what)
            names.add(name)
            port = bridge.get('port')
            if port is not None:
                if not isinstance(port, str) or not IFNAME_RE.fullmatch(port):
                    raise Invalid('%s: port %r is not a valid interface name' % (what, port))
                if port not in links:
                    raise Invalid('%s: port %s does not exist on this node (interfaces here: %s)'
                                  % (what, port, ', '.join(sorted(links))))
                master = links[port].get('master')
                if master and master != name:
                    raise Invalid('%s: port %s is already enslaved to %s' % (what, port, master))
                if (links[port].get('linkinfo') or {}).get('info_kind') == 'bridge':
                    raise Invalid('%s: port %s is itself a bridge' % (what, port))
            if name in links and (links[name].get('linkinfo') or {}).get('info_kind') != 'bridge':
                raise Invalid('%s: %s exists and is not a bridge (%s)'
                              % (what, name, (links[name].get('linkinfo') or {}).get('info_kind', 'physical')))
            bridge['addresses'] = [check_address(a, '%s address' % what) for a in bridge.get('addresses') or []]
            if bridge.get('instance_only') and bridge['addresses']:
                raise Invalid('%s is instance_only but has addresses %s' % (what, bridge['addresses']))
            if bridge.get('gateway'):
                bridge['gateway'] = check_gateway(bridge['gateway'], '%s gateway' % what)
            bridge['vids'] = parse_vlans(bridge.get('vlans') or [], '%s vlans' % what)
            if bridge['vids'] and not bridge.get('vlan_aware'):
                raise Invalid('%s: vlans are given but vlan_aware is false' % what)
            if bridge.get('mtu') is not None and not 68 <= int(bridge['mtu']) <= 65535:
                raise Invalid('%s: mtu %r out of range (68-65535)' % (what, bridge['mtu']))
            bridge['vlan_aware'] = bool(bridge.get('vlan_aware'))
            bridge['instance_only'] = bool(bridge.get('instance_only'))
            bridges.append(bridge)
        except Invalid as exc:
            problems.append(str(exc))
    ports = [b.get('port') for b in bridges if b.get('port')]
    for port in set(ports):
        if ports.count(port) > 1:
            problems.append('port %s is given for more than one bridge' % port)
    secondary = params.get('secondary')
    if secondary:
        try:
            iface = secondary['interface']
            if not isinstance(iface, str) or not IFNAME_RE.fullmatch(iface):
                raise Invalid('secondary: interface %r is not a valid interface name' % iface)
            if iface not in links and iface not in names:
                raise Invalid('secondary: interface %s does not exist on this node (interfaces here: %s)'
                              % (iface, ', '.join(sorted(links))))
            if iface in ports:
                raise Invalid('secondary: interface %s is the port of a bridge; give the bridge instead' % iface)
            secondary = dict(interface=iface, address=check_address(secondary['address'], 'secondary address'))
        except Invalid as exc:
            problems.append(str(exc))
    return problems, bridges, secondary


def main():
    module = AnsibleModule(
        argument_spec=dict(
            bridges=dict(type='list', elements='dict', default=[], options=dict(
                name=dict(type='str', required=True),
                port=dict(type='str'),
                addresses=dict(type='list', elements='str', default=[]),
                gateway=dict(type='str'),
                instance_only=dict(type='bool', default=False),
                vlan_aware=dict(type='bool', default=False),
                vlans=dict(type='list', elements='raw', default=[]),
                mtu=dict(type='int'),
            )),
            secondary=dict(type='dict', options=dict(
                interface=dict(type='str', required=True),
                address=dict(type='str', required=True),
            )),
            persist=dict(type='bool', default=True),
            persist_dir=dict(type='path', default='/etc/network/interfaces.d'),
            disable_port_stanzas=dict(type='bool', default=True),
            interfaces_file=dict(type='path', default='/etc/network/interfaces'),
        ),
        supports_check_mode=True,
    )
    if not HAS_NETADDR:
        module.fail_json(msg=missing_required_lib('netaddr (Debian: python3-netaddr; the node_base role installs it)'))
    net = Net(module)
    links = net.links()
    problems, bridges, secondary = validate(module.params, links)
    if problems:
        module.fail_json(msg='invalid network settings, nothing was changed: ' + '; '.join(problems),
                         problems=problems)

    # VLAN filtering needs kernel support (CONFIG_BRIDGE_VLAN_FILTERING): find out before changing anything,
    # with a throw-away bridge, rather than fail half-way through the batch.
    if any(b['vlan_aware'] and not ((links.get(b['name']) or {}).get('linkinfo') or {}).get('info_data', {})
           .get('vlan_filtering') for b in bridges):
        probe = 'herdvf%d' % (os.getpid() % 100000)
        rc, _out, err = module.run_command(['ip', 'link', 'add', 'name', probe, 'type', 'bridge', 'vlan_filtering', '1'])
        if rc != 0:
            module.fail_json(msg='this kernel cannot make VLAN-aware bridges (ip link add type bridge vlan_filtering 1: '
                                 '%s); nothing was changed' % err.strip())
        module.run_command(['ip', 'link', 'del', probe])

    ip_batch, bridge_batch, files, report = [], [], {}, []
    for bridge in bridges:
        name, port = bridge['name'], bridge.get('port')
        link = links.get(name)
        exists = link is not None
        port_addrs = net.addresses(port) if port else []
        bridge_addrs = net.addresses(name) if exists else []
        port_routes = net.routes(port) if port else []
        bridge_routes = net.routes(name) if exists else []
        if bridge['instance_only']:
            if port_addrs:
                module.fail_json(msg='bridge %s is instance_only but its port %s carries host address(es) %s; move '
                                     'them elsewhere first, nothing was changed' % (name, port, ', '.join(port_addrs)))
            want_addrs = []
        elif bridge['addresses']:
            want_addrs = bridge['addresses']
        else:
            want_addrs = sorted(set(port_addrs) | set(bridge_addrs), key=lambda a: (':' in a, a))
        move_routes = port_routes if not bridge['instance_only'] else []
        if bridge.get('gateway'):
            move_routes = [r for r in move_routes if r['dst'] != 'default']
            family = '-6' if ':' in bridge['gateway'] else '-4'
            have_gw = [r for r in bridge_routes if r['dst'] == 'default' and r['gateway'] == bridge['gateway']]
            if not have_gw:
                move_routes.append(dict(dst='default', gateway=bridge['gateway'], metric=None, family=family))

        port_mac = links[port].get('address') if port else None
        if not exists:
            # the MAC given at creation is marked as set by the administrator, so udev's
            # MACAddressPolicy does not replace it (a separate `link set address` can race udev)
            ip_batch.append('link add name %s%s type bridge stp_state 0 forward_delay 0%s'
                            % (name, ' address %s' % port_mac if port_mac else '',
                               ' vlan_filtering 1' if bridge['vlan_aware'] else ''))
        else:
            data = (link.get('linkinfo') or {}).get('info_data') or {}
            if bool(data.get('vlan_filtering')) != bridge['vlan_aware']:
                ip_batch.append('link set dev %s type bridge vlan_filtering %d' % (name, int(bridge['vlan_aware'])))
            if port_mac and link.get('address') != port_mac:
                ip_batch.append('link set dev %s address %s' % (name, port_mac))
        if bridge.get('mtu'):
            for dev in [port, name] if port else [name]:
                if not links.get(dev) or links[dev].get('mtu') != bridge['mtu']:
                    ip_batch.append('link set dev %s mtu %d' % (dev, bridge['mtu']))
        if not exists or 'UP' not in link.get('flags', []):
            ip_batch.append('link set dev %s up' % name)
        if port:
            if links[port].get('master') != name:
                ip_batch.append('link set dev %s master %s' % (port, name))
            if 'UP' not in links[port].get('flags', []):
                ip_batch.append('link set dev %s up' % port)
        for addr in want_addrs:
            if addr not in bridge_addrs:
                ip_batch.append('address add %s%s dev %s' % (addr, '' if ':' in addr else ' brd +', name))
        for route in move_routes:
            ip_batch.append('route replace %s%s dev %s%s' % (
                route['dst'], ' via %s' % route['gateway'] if route['gateway'] else '', name,
                ' metric %s' % route['metric'] if route.get('metric') is not None else ''))
        for addr in port_addrs:
            if not bridge['instance_only']:
                ip_batch.append('address del %s dev %s' % (addr, port))

        # VLANs on the port of a VLAN-aware bridge (a new port's VLANs exist only after the ip batch)
        if bridge['vlan_aware'] and port:
            have_vids, pvid = net.port_vlans(port) if links[port].get('master') == name else ({1}, 1)
            pvid = pvid or 1
            for item in ranges(bridge['vids'] - have_vids - {pvid}):
                bridge_batch.append('vlan add dev %s vid %s' % (port, item))
            for item in ranges(have_vids - bridge['vids'] - {pvid}):
                bridge_batch.append('vlan del dev %s vid %s' % (port, item))

        gateway = bridge.get('gateway')
        if not gateway:
            for route in port_routes + bridge_routes:
                if route['dst'] == 'default':
                    gateway = route['gateway']
                    break
        keep_routes = [r for r in (port_routes or bridge_routes) if r['dst'] != 'default']
        files['herd-%s' % name] = stanza_bridge(bridge, port, want_addrs, gateway, keep_routes)
        report.append(dict(name=name, port=port, addresses=want_addrs, gateway=gateway,
                           vlan_aware=bridge['vlan_aware'], vlans=ranges(bridge['vids']),
                           instance_only=bridge['instance_only']))

    if secondary:
        iface = secondary['interface']
        if iface in links:
            have = net.addresses(iface)
            if secondary['address'] not in have:
                ip_batch.append('address add %s%s dev %s' % (secondary['address'],
                                                             '' if ':' in secondary['address'] else ' brd +', iface))
            if 'UP' not in links[iface].get('flags', []):
                ip_batch.append('link set dev %s up' % iface)
        else:  # a bridge created in this very run
            ip_batch.append('address add %s dev %s' % (secondary['address'], iface))
        files['herd-%s' % iface] = stanza_secondary(iface, secondary['address'])

    persist_dir = module.params['persist_dir']
    changed_files = []
    diff_before, diff_after = [], []
    if module.params['persist']:
        for fname in sorted(files):
            path = os.path.join(persist_dir, fname)
            old = read(path)
            if old != files[fname]:
                changed_files.append(path)
                diff_before.append('# %s\n%s' % (path, old or ''))
                diff_after.append('# %s\n%s' % (path, files[fname]))

    warnings = []
    interfaces = module.params['interfaces_file']
    new_interfaces = None
    if module.params['persist']:
        text = read(interfaces)
        if text is None:
            warnings.append('%s does not exist (ifupdown not configured here): the stanzas in %s take effect only '
                            'when it sources them' % (interfaces, persist_dir))
        else:
            if 'interfaces.d' not in text:
                warnings.append('%s does not source %s/*: add "source %s/*" so the bridges come back after a reboot'
                                % (interfaces, persist_dir, persist_dir))
            names = [b['port'] for b in bridges if b.get('port')]
            if secondary:
                names.append(secondary['interface'])
            fixed, touched = comment_out(text, names)
            if touched and module.params['disable_port_stanzas']:
                new_interfaces = fixed
                changed_files.append(interfaces)
                diff_before.append('# %s\n%s' % (interfaces, text))
                diff_after.append('# %s\n%s' % (interfaces, fixed))
            elif touched:
                warnings.append('%s still configures %s: remove those stanzas (herd configures them in %s now) or '
                                'they take the addresses back at boot' % (interfaces, ', '.join(names), persist_dir))

    if not module.check_mode:
        if ip_batch:
            rc, out, err = module.run_command(['ip', '-batch', '-'], data='\n'.join(ip_batch) + '\n')
            if rc != 0:
                module.fail_json(msg='ip -batch failed: %s' % err.strip(), ip_batch=ip_batch, rc=rc)
        if bridge_batch:
            rc, out, err = module.run_command(['bridge', '-batch', '-'], data='\n'.join(bridge_batch) + '\n')
            if rc != 0:
                module.fail_json(msg='bridge -batch failed: %s' % err.strip(), bridge_batch=bridge_batch, rc=rc)
        # verify what the kernel now has
        links = net.links()
        for entry in report:
            if entry['port'] and links.get(entry['port'], {}).get('master') != entry['name']:
                module.fail_json(msg='port %s is not on bridge %s after the change' % (entry['port'], entry['name']))
            missing = [a for a in entry['addresses'] if a not in net.addresses(entry['name'])]
            if missing:
                module.fail_json(msg='bridge %s lacks %s after the change' % (entry['name'], ', '.join(missing)))
        for path in changed_files:
            write_atomic(path, new_interfaces if path == interfaces else files[os.path.basename(path)])

    for warning in warnings:
        module.warn(warning)
    result = dict(changed=bool(ip_batch or bridge_batch or changed_files), ip_batch=ip_batch,
                  bridge_batch=bridge_batch, files=changed_files, bridges=report,
                  secondary=secondary)
    if module._diff:
        result['diff'] = dict(before='\n'.join(diff_before), after='\n'.join(diff_after))
    module.exit_json(**result)


if __name__ == '__main__':
    main()
