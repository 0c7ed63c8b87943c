"""The compute nodes of the multi-node layout: namespaces, their network, their slurmd.

Each node ``nodeK`` is a network namespace ``<prefix>-nodeK`` (``ip netns``) whose
``eth0`` is one end of a veth pair; the other end sits on a bridge in the root
namespace, which holds the login host's address ``<subnet>.1``. The subnet exists
only between the bridge and these namespaces: no default route, no forwarding,
nothing routed off the machine.

A small *holder* process per node (``sleep infinity``) keeps the node's own UTS
namespace (host name ``nodeK``) and mount namespace (a private tmpfs on ``/tmp``,
the dev cluster's hosts file on ``/etc/hosts``) alive, so the node keeps its
``/tmp`` when its slurmd restarts. slurmd enters all three namespaces with
``nsenter``. Home directories and every other path stay shared with the login host.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
from pathlib import Path

from slurm.devcluster import daemons as d
from slurm.devcluster.proc import DevclusterError, run
from slurm.devcluster.rootfs import enter_argv
from slurm.devcluster.settings import NodeSpec, Settings

__all__ = [
    "down_nodes",
    "ensure_network",
    "holder_pids",
    "node_states",
    "nodes_running",
    "remove_network",
    "start_nodes",
]

_TMPFS_SIZE = "1g"


def _ip(*args: str, check: bool = True) -> bool:
    """Run ``ip ARGS``; True when it succeeded."""
    return run(["ip", *args], check=check, timeout=30).returncode == 0


def _link_exists(name: str) -> bool:
    return _ip("link", "show", "dev", name, check=False)


def _netns_list() -> list[str]:
    out = run(["ip", "netns", "list"], check=False, timeout=30).stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def _netns_pids(netns: str) -> list[int]:
    out = run(["ip", "netns", "pids", netns], check=False, timeout=30).stdout
    return [int(word) for word in out.split() if word.isdigit()]


def _holder(node: NodeSpec) -> d.Daemon:
    return d.Daemon(f"node-{node.name}", "sleep", own_log=False)


def _slurmd(node: NodeSpec) -> d.Daemon:
    return d.Daemon(f"slurmd-{node.name}", "slurmd")


def _our_netns(s: Settings) -> list[str]:
    """Every namespace this cluster's prefix names, in the layout or left from another one."""
    return [ns for ns in _netns_list() if ns.startswith(f"{s.net_prefix}-node")]


def _check_state_dir(s: Settings) -> None:
    tmp = Path("/tmp")  # noqa: S108 (refusing it, not using it: each node has its own /tmp)
    if s.state_dir == tmp or tmp in s.state_dir.parents:
        raise DevclusterError(
            f"The state directory {s.state_dir} is under /tmp, which each compute node of "
            "the multi-node layout has to itself, so the nodes could not read slurm.conf. "
            "Choose another directory (--state-dir or $SLURM_SDK_DEVCLUSTER_DIR), "
            "or run `slurm devcluster up --nodes 1`."
        )


def ensure_network(s: Settings) -> None:
    """Create what is missing of the bridge, the namespaces and their veth pairs."""
    _check_state_dir(s)
    for ns in _our_netns(s):  # nodes of an earlier, larger layout
        if ns not in {n.netns for n in s.compute_nodes}:
            _remove_netns(s, ns)
    if not _link_exists(s.bridge):
        _ip("link", "add", s.bridge, "type", "bridge")
    bridge_cidr = f"{s.login_address}/24"
    if bridge_cidr not in run(["ip", "-o", "addr", "show", "dev", s.bridge], timeout=30).stdout:
        _ip("addr", "add", bridge_cidr, "dev", s.bridge)
    _ip("link", "set", s.bridge, "up")
    existing = set(_netns_list())
    for node in s.compute_nodes:
        if node.netns not in existing:
            _ip("netns", "add", node.netns)
        if not _link_exists(node.veth):
            _ip(
                "link",
                "add",
                node.veth,
                "type",
                "veth",
                "peer",
                "name",
                "eth0",
                "netns",
                node.netns,
            )
        _ip("link", "set", node.veth, "master", s.bridge, "up")
        inside = ["-n", node.netns]
        cidr = f"{node.address}/24"
        if cidr not in run(["ip", *inside, "-o", "addr", "show", "dev", "eth0"], timeout=30).stdout:
            _ip(*inside, "addr", "add", cidr, "dev", "eth0")
        _ip(*inside, "link", "set", "eth0", "up")
        _ip(*inside, "link", "set", "lo", "up")


def _kill_netns_processes(netns: str) -> None:
    """SIGKILL whatever still runs in one of our namespaces (jobs' leftovers, crashed runs)."""
    for pid in _netns_pids(netns):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _remove_netns(s: Settings, netns: str) -> None:
    name = netns.removeprefix(f"{s.net_prefix}-")
    spec = NodeSpec(name, netns, f"{s.net_prefix}n{name.removeprefix('node')}", "")
    d.stop_daemon(s, _slurmd(spec))
    d.stop_daemon(s, _holder(spec))
    _kill_netns_processes(netns)
    _ip("netns", "del", netns, check=False)
    if _link_exists(spec.veth):
        _ip("link", "del", spec.veth, check=False)


def remove_network(s: Settings) -> None:
    """Remove every namespace, veth pair and the bridge of this cluster (and what runs there)."""
    for ns in _our_netns(s):
        _remove_netns(s, ns)
    for node in s.compute_nodes:
        if _link_exists(node.veth):
            _ip("link", "del", node.veth, check=False)
    if _link_exists(s.bridge):
        _ip("link", "del", s.bridge, check=False)


def _rootns_pid(s: Settings) -> int:
    pid = d.running_pid(s, d.ROOTNS)
    if pid is None:
        raise DevclusterError(f"the root holder of {s.state_dir} is not running")
    return pid


def _pivoted(s: Settings) -> bool:
    """The nodes' holders made the release's root their own root (with Apptainer), so that
    what enters a node needs no chroot."""
    return s.root is not None and s.apptainer and s.multi_node


def _start_holder(s: Settings, node: NodeSpec) -> bool:
    """Start the node's holder unless it runs; True when it started now."""
    holder = _holder(node)
    if d.running_pid(s, holder) is not None:
        return False
    # A holder that is gone leaves nothing usable behind: clear out the namespace.
    d.stop_daemon(s, _slurmd(node))
    _kill_netns_processes(node.netns)
    # A release's root: the node starts in the root holder's mount namespace (the root
    # with every shared path in it) and puts its own /tmp and hosts file over the root's.
    top = "" if s.root is None else shlex.quote(str(s.root))
    # With Apptainer the root becomes the node's own root (pivot_root): Apptainer refuses
    # to run in a chroot, whose mount namespace's root is another file system.
    pivot = [f"mount --rbind {top} {top}"] if _pivoted(s) else []
    setup = " && ".join(
        [
            f"hostname {shlex.quote(node.name)}",
            *pivot,
            f"mount -t tmpfs -o mode=1777,size={_TMPFS_SIZE} tmpfs {top}/tmp",  # noqa: S108
            f"mount --bind {shlex.quote(str(s.hosts_file))} {top}/etc/hosts",
            *([f"cd {top}", "pivot_root . .", "umount -l .", "cd /"] if pivot else []),
            "exec sleep infinity",
        ]
    )
    # nsenter rather than `ip netns exec`, which mounts a fresh /sys without the cgroup
    # tree that slurmd looks for.
    argv = ["nsenter", f"--net=/run/netns/{node.netns}"]
    if s.root is not None:
        argv.append(f"--mount=/proc/{_rootns_pid(s)}/ns/mnt")
    argv += ["--", "unshare", "--uts", "--mount"]
    argv += ["--propagation", "private", "sh", "-c", setup]
    pid, _ = d.spawn(s, holder, argv)
    d.wait(s, holder, pid, lambda: d.running_pid(s, holder) is not None, "node holder died")
    return True


def start_nodes(s: Settings, *, restart: bool = False) -> None:
    """Start each node's holder and slurmd; ``restart`` restarts the slurmds (new config)."""
    d.stop_stray_slurmds(s, keep={_slurmd(n).name for n in s.compute_nodes})
    for node in s.compute_nodes:
        if not s.multi_node:
            enter = [] if s.root is None else enter_argv(s.root, _rootns_pid(s))
            d.start_slurmd(s, node, _slurmd(node), enter, restart=restart)
            continue
        fresh = _start_holder(s, node)
        holder_pid = d.running_pid(s, _holder(node))
        if holder_pid is None:
            raise DevclusterError(f"the holder of {node.name} died (log: {s.log_dir})")
        if s.root is None or _pivoted(s):  # the node's root is the release's root already
            enter = ["nsenter", f"--target={holder_pid}", "--net", "--uts", "--mount", "--"]
        else:
            enter = enter_argv(s.root, holder_pid, namespaces=("--net", "--uts", "--mount"))
        d.start_slurmd(s, node, _slurmd(node), enter, restart=restart or fresh)


def holder_pids(s: Settings) -> list[int]:
    """The pids of the nodes' holders that run (their mount namespaces are the nodes')."""
    pids = (d.running_pid(s, _holder(node)) for node in s.compute_nodes)
    return [pid for pid in pids if pid is not None]


def down_nodes(s: Settings) -> None:
    """Stop every slurmd and holder, then remove the namespaces and interfaces."""
    d.stop_stray_slurmds(s, keep=set())
    for node in s.compute_nodes:
        d.stop_daemon(s, _holder(node))
    remove_network(s)


def nodes_running(s: Settings) -> bool:
    """True when every node's slurmd (and holder, in the multi-node layout) runs."""
    for node in s.compute_nodes:
        if d.running_pid(s, _slurmd(node)) is None:
            return False
        if s.multi_node and d.running_pid(s, _holder(node)) is None:
            return False
    return True


def node_states(s: Settings) -> dict[str, str]:
    """Each node's state as ``sinfo`` prints it (``idle``, ``mixed``, ``down*``, ...)."""
    try:
        argv = d.in_root(s, ["sinfo", "-h", "-N", "-o", "%N %T"])
    except DevclusterError:  # a release's root holder is gone (a crash): nothing to ask
        return {}
    out = run(
        argv,
        env={"SLURM_CONF": str(s.slurm_conf)},
        check=False,
        timeout=15,
    )
    states: dict[str, str] = {}
    if out.returncode == 0:
        for line in out.stdout.splitlines():
            name, _, state = line.partition(" ")
            states.setdefault(name, state.strip())
    return states
