"""The node side of herd.cluster.node_network: Linux bridges (optionally VLAN-aware) with the
host's addresses and routes moved over from their port, a secondary interface's address, and the
ifupdown stanzas that bring both back at boot. ``configure`` validates everything first, plans
one ``ip -batch`` and one ``bridge -batch``, and applies them unless in check mode."""

import json
import os
import re
import tempfile
from typing import Any, Callable, Dict, Iterable, List, Optional, Set, Tuple

from .names import valid_ifname
from .errors import HerdError, ValidationError

try:
    import netaddr
except ImportError:  # the module says how to install it
    netaddr = None

Runner = Callable[..., Tuple[int, str, str]]


HEADER = '# Managed by herd.cluster.node_network; changes are overwritten.\n'


class Invalid(ValidationError):
    """One invalid setting."""


class InvalidSettings(ValidationError):
    """Every invalid setting at once; nothing was changed."""

    def __init__(self, problems: List[str]):
        super().__init__("invalid network settings, nothing was changed: " + "; ".join(problems))
        self.problems = problems


class NetworkError(HerdError):
    """A change that could not be made or checked; ``details`` go into the task's result."""

    def __init__(self, message: str, **details: Any):
        super().__init__(message)
        self.details = details


def check_address(value: Any, what: str) -> str:
    """A host address with prefix length, strictly (no '10/8', no '1.2.3/24', no '300.1.1.1/24')."""
    if not isinstance(value, str) or '/' not in value:
        raise Invalid('%s %r is not an address with a prefix length (like 198.51.100.11/24)' % (what, value))
    addr, _sep, prefix = value.partition('/')
    try:
        ip = netaddr.IPAddress(addr, flags=netaddr.INET_PTON)
    except (netaddr.AddrFormatError, ValueError, TypeError):
        raise Invalid('%s %r is not an address: %r is not a valid IPv4 or IPv6 address' % (what, value, addr)) \
            from None
    limit = 32 if ip.version == 4 else 128
    if not prefix.isdigit() or not 0 < int(prefix) <= limit:
        raise Invalid('%s %r has an invalid prefix length %r (1-%d)' % (what, value, prefix, limit))
    net = netaddr.IPNetwork(value)
    if ip.version == 4 and net.prefixlen < 31 and ip in (net.network, net.broadcast):
        raise Invalid('%s %r is the network or broadcast address of %s, not a host address' % (what, value, net.cidr))
    return '%s/%d' % (ip, net.prefixlen)


def check_gateway(value: Any, what: str) -> str:
    try:
        return str(netaddr.IPAddress(value, flags=netaddr.INET_PTON))
    except (netaddr.AddrFormatError, ValueError, TypeError):
        raise Invalid('%s %r is not an IP address' % (what, value)) from None


def parse_vlans(values: Iterable[Any], what: str) -> Set[int]:
    vids: Set[int] = set()
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


def ranges(vids: Iterable[int]) -> List[str]:
    """[10, 11, 12, 20] -> ['10-12', '20']"""
    out: List[List[int]] = []
    for vid in sorted(vids):
        if out and out[-1][1] == vid - 1:
            out[-1][1] = vid
        else:
            out.append([vid, vid])
    return ['%d' % a if a == b else '%d-%d' % (a, b) for a, b in out]


class Net:
    """The node's links, addresses, routes and bridge VLANs through ``ip``/``bridge`` JSON output.
    ``run(argv, data=None) -> (rc, stdout, stderr)`` runs a command (AnsibleModule.run_command)."""

    def __init__(self, run: Runner):
        self.run = run

    def json(self, args: List[str]) -> Any:
        rc, out, err = self.run(args)
        if rc != 0:
            raise NetworkError('%s failed: %s' % (' '.join(args), err.strip()))
        return json.loads(out or '[]')

    def links(self) -> Dict[str, Any]:
        return dict((link['ifname'], link) for link in self.json(['ip', '-d', '-j', 'link', 'show']))

    def addresses(self, dev: str) -> List[str]:
        result = []
        for link in self.json(['ip', '-j', 'addr', 'show', 'dev', dev]):
            for info in link.get('addr_info', []):
                if info.get('scope') == 'global':
                    result.append('%s/%d' % (info['local'], info['prefixlen']))
        return result

    def routes(self, dev: str) -> List[Dict[str, Any]]:
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

    def port_vlans(self, port: str) -> Tuple[Set[int], Optional[int]]:
        rc, out, err = self.run(['bridge', '-j', 'vlan', 'show', 'dev', port])
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
        vids: Set[int] = set()
        pvid: Optional[int] = None
        for entry in entries:
            low = entry['vlan']
            high = entry.get('vlanEnd', low)
            if 'PVID' in entry.get('flags', []):
                pvid = low
            vids.update(range(low, high + 1))
        return vids, pvid


def stanza_bridge(bridge: Dict[str, Any], port: Optional[str], addresses: List[str], gateway: Optional[str],
                  routes: List[Dict[str, Any]]) -> str:
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


def stanza_secondary(interface: str, address: str) -> str:
    family = 'inet6' if ':' in address else 'inet'
    return '%sauto %s\niface %s %s static\n    address %s\n' % (HEADER, interface, interface, family, address)


STANZA_RE = re.compile(r'^\s*(iface|auto|allow-\S+|mapping|source|source-directory|rename)(\s|$)')
MARK = '#herd# '


def comment_out(text: str, names: List[str]) -> Tuple[str, bool]:
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


def read(path: str) -> Optional[str]:
    try:
        with open(path) as handle:
            return handle.read()
    except (IOError, OSError):
        return None


def write_atomic(path: str, text: str) -> None:
    directory = os.path.dirname(path)
    if not os.path.isdir(directory):
        os.makedirs(directory, 0o755)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix='.herd-')
    with os.fdopen(fd, 'w') as handle:
        handle.write(text)
    os.chmod(tmp, 0o644)
    os.rename(tmp, path)


def validate(params: Dict[str, Any], links: Dict[str, Any]
             ) -> Tuple[List[str], List[Dict[str, Any]], Optional[Dict[str, str]]]:
    """All problems at once, before anything is touched."""
    problems = []
    bridges = []
    names = set()
    for index, raw in enumerate(params['bridges']):
        what = 'bridges[%d]' % index
        bridge = dict(raw)
        try:
            name = bridge['name']
            if not isinstance(name, str) or not valid_ifname(name):
                raise Invalid('%s: bridge name %r is not a valid interface name (at most 15 of letters, digits, '
                              '_.-)' % (what, name))
            what = 'bridge %s' % name
            if name in names:
                raise Invalid('%s is given twice' % what)
            names.add(name)
            port = bridge.get('port')
            if port is not None:
                if not isinstance(port, str) or not valid_ifname(port):
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
            if not isinstance(iface, str) or not valid_ifname(iface):
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


class Plan:
    """What one run changes: the ``ip -batch`` and ``bridge -batch`` lines, the ifupdown files
    (name to text) and, per bridge, what it ends up with (the module's ``bridges``)."""

    def __init__(self) -> None:
        self.ip_batch: List[str] = []
        self.bridge_batch: List[str] = []
        self.files: Dict[str, str] = {}
        self.report: List[Dict[str, Any]] = []
        self.changed_files: List[str] = []
        self.new_interfaces: Optional[str] = None
        self.diff_before: List[str] = []
        self.diff_after: List[str] = []
        self.warnings: List[str] = []


def configure(params: Dict[str, Any], net: Net, check_mode: bool,
              floating_ip: Optional[str] = None) -> Tuple[Dict[str, Any], List[str]]:
    """Validate, plan and (unless ``check_mode``) apply ``params`` (the module's options);
    ``floating_ip`` is the cluster's master IP (ssconf), which a bridge may carry and never keeps;
    returns (result, warnings). Raises InvalidSettings before anything is touched, NetworkError
    when a change fails."""
    links = net.links()
    problems, bridges, secondary = validate(params, links)
    if problems:
        raise InvalidSettings(problems)
    check_vlan_filtering(net, links, bridges)
    plan = Plan()
    for bridge in bridges:
        plan_bridge(plan, net, links, bridge, floating_ip)
    if secondary:
        plan_secondary(plan, net, links, secondary)
    if params['persist']:
        plan_files(plan, params, bridges, secondary)
    if not check_mode:
        apply(plan, net, params['interfaces_file'])
    result = dict(changed=bool(plan.ip_batch or plan.bridge_batch or plan.changed_files), ip_batch=plan.ip_batch,
                  bridge_batch=plan.bridge_batch, files=plan.changed_files, bridges=plan.report,
                  secondary=secondary,
                  diff=dict(before='\n'.join(plan.diff_before), after='\n'.join(plan.diff_after)))
    return result, plan.warnings


def check_vlan_filtering(net: Net, links: Dict[str, Any], bridges: List[Dict[str, Any]]) -> None:
    """VLAN filtering needs kernel support (CONFIG_BRIDGE_VLAN_FILTERING): find out before changing
    anything, with a throw-away bridge, rather than fail half-way through the batch."""
    if any(b['vlan_aware'] and not ((links.get(b['name']) or {}).get('linkinfo') or {}).get('info_data', {})
           .get('vlan_filtering') for b in bridges):
        probe = 'herdvf%d' % (os.getpid() % 100000)
        rc, _out, err = net.run(['ip', 'link', 'add', 'name', probe, 'type', 'bridge', 'vlan_filtering', '1'])
        if rc != 0:
            raise NetworkError('this kernel cannot make VLAN-aware bridges (ip link add type bridge vlan_filtering '
                               '1: %s); nothing was changed' % err.strip())
        net.run(['ip', 'link', 'del', probe])


def plan_bridge(plan: Plan, net: Net, links: Dict[str, Any], bridge: Dict[str, Any],
                floating_ip: Optional[str] = None) -> None:
    """Create or adjust one bridge, move its port's addresses and routes onto it, and write its stanza."""
    name, port = bridge['name'], bridge.get('port')
    link = links.get(name)
    port_addrs = net.addresses(port) if port else []
    bridge_addrs = net.addresses(name) if link is not None else []
    port_routes = net.routes(port) if port else []
    bridge_routes = net.routes(name) if link is not None else []
    if bridge['instance_only']:
        if port_addrs:
            raise NetworkError('bridge %s is instance_only but its port %s carries host address(es) %s; move '
                               'them elsewhere first, nothing was changed' % (name, port, ', '.join(port_addrs)))
        want_addrs: List[str] = []
    elif bridge['addresses']:
        want_addrs = bridge['addresses']
    else:
        # the cluster's floating master IP, which the node agent adds and moves at master failover,
        # is not the node's own address: left alone, never persisted
        own = [a for a in bridge_addrs if a.split('/')[0] != floating_ip]
        want_addrs = sorted(set(port_addrs) | set(own), key=lambda a: (':' in a, a))
    move_routes = port_routes if not bridge['instance_only'] else []
    if bridge.get('gateway'):
        move_routes = [r for r in move_routes if r['dst'] != 'default']
        family = '-6' if ':' in bridge['gateway'] else '-4'
        if not [r for r in bridge_routes if r['dst'] == 'default' and r['gateway'] == bridge['gateway']]:
            move_routes.append(dict(dst='default', gateway=bridge['gateway'], metric=None, family=family))
    plan_links(plan, links, bridge)
    for addr in want_addrs:
        if addr not in bridge_addrs:
            plan.ip_batch.append('address add %s%s dev %s' % (addr, '' if ':' in addr else ' brd +', name))
    for route in move_routes:
        plan.ip_batch.append('route replace %s%s dev %s%s' % (
            route['dst'], ' via %s' % route['gateway'] if route['gateway'] else '', name,
            ' metric %s' % route['metric'] if route.get('metric') is not None else ''))
    if not bridge['instance_only']:
        plan.ip_batch.extend('address del %s dev %s' % (addr, port) for addr in port_addrs)
    if bridge['vlan_aware'] and port:
        plan_port_vlans(plan, net, links, bridge)
    gateway = bridge.get('gateway')
    if not gateway:
        gateway = next((r['gateway'] for r in port_routes + bridge_routes if r['dst'] == 'default'), None)
    keep_routes = [r for r in (port_routes or bridge_routes) if r['dst'] != 'default']
    plan.files['herd-%s' % name] = stanza_bridge(bridge, port, want_addrs, gateway, keep_routes)
    plan.report.append(dict(name=name, port=port, addresses=want_addrs, gateway=gateway,
                            vlan_aware=bridge['vlan_aware'], vlans=ranges(bridge['vids']),
                            instance_only=bridge['instance_only']))


def plan_links(plan: Plan, links: Dict[str, Any], bridge: Dict[str, Any]) -> None:
    """The bridge link itself (created with its port's MAC), its VLAN filtering, MTU, and its port."""
    name, port = bridge['name'], bridge.get('port')
    link = links.get(name)
    port_mac = links[port].get('address') if port else None
    if link is None:
        # the MAC given at creation is marked as set by the administrator, so udev's
        # MACAddressPolicy does not replace it (a separate `link set address` can race udev)
        plan.ip_batch.append('link add name %s%s type bridge stp_state 0 forward_delay 0%s'
                             % (name, ' address %s' % port_mac if port_mac else '',
                                ' vlan_filtering 1' if bridge['vlan_aware'] else ''))
    else:
        data = (link.get('linkinfo') or {}).get('info_data') or {}
        if bool(data.get('vlan_filtering')) != bridge['vlan_aware']:
            plan.ip_batch.append('link set dev %s type bridge vlan_filtering %d' % (name, int(bridge['vlan_aware'])))
        if port_mac and link.get('address') != port_mac:
            plan.ip_batch.append('link set dev %s address %s' % (name, port_mac))
    if bridge.get('mtu'):
        for dev in [port, name] if port else [name]:
            if not links.get(dev) or links[dev].get('mtu') != bridge['mtu']:
                plan.ip_batch.append('link set dev %s mtu %d' % (dev, bridge['mtu']))
    if link is None or 'UP' not in link.get('flags', []):
        plan.ip_batch.append('link set dev %s up' % name)
    if port:
        if links[port].get('master') != name:
            plan.ip_batch.append('link set dev %s master %s' % (port, name))
        if 'UP' not in links[port].get('flags', []):
            plan.ip_batch.append('link set dev %s up' % port)


def plan_port_vlans(plan: Plan, net: Net, links: Dict[str, Any], bridge: Dict[str, Any]) -> None:
    """VLANs on the port of a VLAN-aware bridge (a new port's VLANs exist only after the ip batch)."""
    name, port = bridge['name'], bridge['port']
    have_vids, pvid = net.port_vlans(port) if links[port].get('master') == name else ({1}, 1)
    pvid = pvid or 1
    for item in ranges(bridge['vids'] - have_vids - {pvid}):
        plan.bridge_batch.append('vlan add dev %s vid %s' % (port, item))
    for item in ranges(have_vids - bridge['vids'] - {pvid}):
        plan.bridge_batch.append('vlan del dev %s vid %s' % (port, item))


def plan_secondary(plan: Plan, net: Net, links: Dict[str, Any], secondary: Dict[str, str]) -> None:
    iface = secondary['interface']
    if iface in links:
        if secondary['address'] not in net.addresses(iface):
            plan.ip_batch.append('address add %s%s dev %s' % (secondary['address'],
                                                              '' if ':' in secondary['address'] else ' brd +', iface))
        if 'UP' not in links[iface].get('flags', []):
            plan.ip_batch.append('link set dev %s up' % iface)
    else:  # a bridge created in this very run
        plan.ip_batch.append('address add %s dev %s' % (secondary['address'], iface))
    plan.files['herd-%s' % iface] = stanza_secondary(iface, secondary['address'])


def plan_files(plan: Plan, params: Dict[str, Any], bridges: List[Dict[str, Any]],
               secondary: Optional[Dict[str, str]]) -> None:
    """The stanza files that differ, and the port stanzas of /etc/network/interfaces to comment out."""
    persist_dir, interfaces = params['persist_dir'], params['interfaces_file']
    for fname in sorted(plan.files):
        path = os.path.join(persist_dir, fname)
        old = read(path)
        if old != plan.files[fname]:
            plan.changed_files.append(path)
            plan.diff_before.append('# %s\n%s' % (path, old or ''))
            plan.diff_after.append('# %s\n%s' % (path, plan.files[fname]))
    text = read(interfaces)
    if text is None:
        plan.warnings.append('%s does not exist (ifupdown not configured here): the stanzas in %s take effect only '
                             'when it sources them' % (interfaces, persist_dir))
        return
    if 'interfaces.d' not in text:
        plan.warnings.append('%s does not source %s/*: add "source %s/*" so the bridges come back after a reboot'
                             % (interfaces, persist_dir, persist_dir))
    ifaces = [b['port'] for b in bridges if b.get('port')] + ([secondary['interface']] if secondary else [])
    fixed, touched = comment_out(text, ifaces)
    if touched and params['disable_port_stanzas']:
        plan.new_interfaces = fixed
        plan.changed_files.append(interfaces)
        plan.diff_before.append('# %s\n%s' % (interfaces, text))
        plan.diff_after.append('# %s\n%s' % (interfaces, fixed))
    elif touched:
        plan.warnings.append('%s still configures %s: remove those stanzas (herd configures them in %s now) or '
                             'they take the addresses back at boot' % (interfaces, ', '.join(ifaces), persist_dir))


def apply(plan: Plan, net: Net, interfaces: str) -> None:
    """Run the batches, check what the kernel now has, then write the files."""
    if plan.ip_batch:
        rc, _out, err = net.run(['ip', '-batch', '-'], data='\n'.join(plan.ip_batch) + '\n')
        if rc != 0:
            raise NetworkError('ip -batch failed: %s' % err.strip(), ip_batch=plan.ip_batch, rc=rc)
    if plan.bridge_batch:
        rc, _out, err = net.run(['bridge', '-batch', '-'], data='\n'.join(plan.bridge_batch) + '\n')
        if rc != 0:
            raise NetworkError('bridge -batch failed: %s' % err.strip(), bridge_batch=plan.bridge_batch, rc=rc)
    links = net.links()
    for entry in plan.report:
        if entry['port'] and links.get(entry['port'], {}).get('master') != entry['name']:
            raise NetworkError('port %s is not on bridge %s after the change' % (entry['port'], entry['name']))
        missing = [a for a in entry['addresses'] if a not in net.addresses(entry['name'])]
        if missing:
            raise NetworkError('bridge %s lacks %s after the change' % (entry['name'], ', '.join(missing)))
    for path in plan.changed_files:
        text = plan.new_interfaces if path == interfaces else plan.files[os.path.basename(path)]
        write_atomic(path, text or '')
