//! A private network for one chaos run, so that a partition is a real one.
//!
//! Every node gets its own network namespace with one interface, `eth0`,
//! at `10.213.<slot>.<node id>`; the interfaces meet on a bridge that lives
//! in a namespace of its own (the switch), so the host's firewall (Docker's
//! `FORWARD DROP`, say) never sees the traffic. The harness stays in the
//! host's namespace and reaches every node through one more port of the
//! switch at `10.213.<slot>.254`: clients keep talking to a node that is cut
//! off from its peers, which is the case that matters ("an isolated leader
//! must not acknowledge what it cannot commit").
//!
//! A cut drops packets silently (`iptables -j DROP` in the sender's
//! namespace), as a broken link does: nothing is refused, connections time
//! out. `cut(a, b)` alone is a one-way cut: a's packets to b vanish while b's
//! reach a (TCP between them then stalls in ways a two-way cut does not).
//!
//! The slot is claimed by creating the switch's namespace, which fails if it
//! exists, so concurrent runs on one machine never share a subnet. Needs
//! root, `ip` (iproute2) and `iptables`; [`NetLab::available`] says whether
//! this machine has them. Dropping the lab deletes the namespaces, and with
//! them every interface and rule it made.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::net::Ipv4Addr;
use std::process::{Command, Stdio};

use anyhow::{Context, bail};
use region_config::NodeId;

/// Slots tried when claiming a subnet.
const SLOTS: u8 = 200;
/// The harness's own address in every lab: `10.213.<slot>.254`.
const HOST: u8 = 254;

/// The harness as the far end of a cut: `cut(node, HARNESS)` drops what
/// `node` sends to the clients (its answers), nothing else.
pub const HARNESS: NodeId = HOST as NodeId;

/// The namespaces, addresses and current cuts of one run's network.
#[derive(Debug)]
pub struct NetLab {
    slot: u8,
    nodes: BTreeSet<NodeId>,
    /// `(from, to)`: packets from `from` to `to` are dropped.
    cuts: BTreeSet<(NodeId, NodeId)>,
}

impl NetLab {
    /// Whether partitions can be made here: root, with `ip` and `iptables`.
    pub fn available() -> bool {
        let has = |tool: &str, flag: &str| {
            Command::new(tool)
                .arg(flag)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        };
        running_as_root() && has("ip", "-V") && has("iptables", "--version")
    }

    /// Makes a namespace for each of `nodes` (ids 1..=253) on a new switch.
    pub fn create(nodes: &[NodeId]) -> anyhow::Result<Self> {
        if let Some(bad) = nodes.iter().find(|&&id| id == 0 || id >= u64::from(HOST)) {
            bail!("node id {bad} has no address in a lab (1 to 253)");
        }
        let slot = (0..SLOTS)
            .find(|slot| quiet(&["ip", "netns", "add", &switch_ns(*slot)]))
            .context("no free network lab slot (ip netns add failed for all; are you root?)")?;
        let mut lab = Self {
            slot,
            nodes: BTreeSet::new(),
            cuts: BTreeSet::new(),
        };
        // From here on a failure drops `lab`, which removes what was made.
        let sw = switch_ns(slot);
        let uplink = uplink(slot);
        // A run killed before it cleaned up may have left this slot's
        // host-side link (the slot itself was free: its switch was gone).
        quiet(&["ip", "link", "del", &uplink]);
        run(&["ip", "-n", &sw, "link", "add", "br0", "type", "bridge"])?;
        run(&["ip", "-n", &sw, "link", "set", "br0", "up"])?;
        run(&[
            "ip", "link", "add", &uplink, "type", "veth", "peer", "name", "up0", "netns", &sw,
        ])?;
        run(&["ip", "-n", &sw, "link", "set", "up0", "master", "br0", "up"])?;
        run(&[
            "ip",
            "addr",
            "add",
            &format!("{}/24", lab.host_addr()),
            "dev",
            &uplink,
        ])?;
        run(&["ip", "link", "set", &uplink, "up"])?;
        for &id in nodes {
            let ns = lab.netns(id);
            run(&["ip", "netns", "add", &ns])?;
            lab.nodes.insert(id);
            let port = format!("bxc{slot}n{id}");
            run(&[
                "ip", "-n", &sw, "link", "add", &port, "type", "veth", "peer", "name", "eth0", "netns", &ns,
            ])?;
            run(&["ip", "-n", &sw, "link", "set", &port, "master", "br0", "up"])?;
            run(&[
                "ip",
                "-n",
                &ns,
                "addr",
                "add",
                &format!("{}/24", lab.addr(id)),
                "dev",
                "eth0",
            ])?;
            run(&["ip", "-n", &ns, "link", "set", "eth0", "up"])?;
            run(&["ip", "-n", &ns, "link", "set", "lo", "up"])?;
        }
        Ok(lab)
    }

    /// Node `id`'s address.
    pub fn addr(&self, id: NodeId) -> Ipv4Addr {
        Ipv4Addr::new(10, 213, self.slot, id as u8)
    }

    /// The harness's address on the switch.
    pub fn host_addr(&self) -> Ipv4Addr {
        Ipv4Addr::new(10, 213, self.slot, HOST)
    }

    /// The name of node `id`'s namespace.
    pub fn netns(&self, id: NodeId) -> String {
        format!("bxc{}-n{id}", self.slot)
    }

    /// What to run a program with so that it lives in node `id`'s
    /// namespace (`ip netns exec` execs it: the pid stays the program's).
    pub fn prefix(&self, id: NodeId) -> Vec<OsString> {
        ["ip", "netns", "exec", &self.netns(id)]
            .into_iter()
            .map(OsString::from)
            .collect()
    }

    /// From now on packets from `from` to `to` are dropped.
    pub fn cut(&mut self, from: NodeId, to: NodeId) -> anyhow::Result<()> {
        if from == to || !self.cuts.insert((from, to)) {
            return Ok(());
        }
        let to = self.addr(to).to_string();
        self.iptables(from, &["-A", "OUTPUT", "-d", &to, "-j", "DROP"])
    }

    /// Cuts `a` and `b` apart both ways.
    pub fn cut_both(&mut self, a: NodeId, b: NodeId) -> anyhow::Result<()> {
        self.cut(a, b)?;
        self.cut(b, a)
    }

    /// Splits the nodes into `side` and the rest, both ways.
    pub fn split(&mut self, side: &[NodeId]) -> anyhow::Result<()> {
        let rest: Vec<NodeId> = self.nodes.iter().copied().filter(|n| !side.contains(n)).collect();
        for &a in side {
            for &b in &rest {
                self.cut_both(a, b)?;
            }
        }
        Ok(())
    }

    /// The cuts in force, `(from, to)`.
    pub fn cuts(&self) -> Vec<(NodeId, NodeId)> {
        self.cuts.iter().copied().collect()
    }

    /// Removes every cut.
    pub fn heal(&mut self) -> anyhow::Result<()> {
        let cut_senders: BTreeSet<NodeId> = self.cuts.iter().map(|(from, _)| *from).collect();
        for from in cut_senders {
            self.iptables(from, &["-F", "OUTPUT"])?;
        }
        self.cuts.clear();
        Ok(())
    }

    /// Runs `iptables -w args...` in node `node`'s namespace.
    fn iptables(&self, node: NodeId, args: &[&str]) -> anyhow::Result<()> {
        let ns = self.netns(node);
        let mut argv = vec!["ip", "netns", "exec", &ns, "iptables", "-w"];
        argv.extend_from_slice(args);
        run(&argv)
    }
}

impl Drop for NetLab {
    fn drop(&mut self) {
        // Deleting a namespace deletes its interfaces, their veth peers and
        // its firewall rules; processes still in one would keep it alive, so
        // the cluster is stopped first (see `TestCluster`).
        // The host-side link first, and explicitly: a namespace's links go
        // when the kernel gets round to it, and the next lab in this slot
        // would find the old one's name taken.
        quiet(&["ip", "link", "del", &uplink(self.slot)]);
        for &id in &self.nodes {
            quiet(&["ip", "netns", "del", &self.netns(id)]);
        }
        quiet(&["ip", "netns", "del", &switch_ns(self.slot)]);
    }
}

/// The harness's link to the switch of lab `slot`, in the host's namespace.
fn uplink(slot: u8) -> String {
    format!("bxc{slot}h")
}

/// Whether this process's effective user is root.
fn running_as_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("Uid:"))
                .and_then(|ids| ids.split_whitespace().nth(1).map(|e| e == "0"))
        })
        .unwrap_or(false)
}

fn switch_ns(slot: u8) -> String {
    format!("bxc{slot}-sw")
}

/// Runs `argv`, failing with its stderr.
fn run(argv: &[&str]) -> anyhow::Result<()> {
    let output = Command::new(argv[0])
        .args(&argv[1..])
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot run {}", argv[0]))?;
    if !output.status.success() {
        bail!(
            "`{}` failed ({}): {}",
            argv.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(())
}

/// Runs `argv`; whether it succeeded.
fn quiet(argv: &[&str]) -> bool {
    Command::new(argv[0])
        .args(&argv[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[cfg(test)]
mod tests {
    use std::io::Read;
    use std::net::{SocketAddr, TcpStream};
    use std::time::Duration;

    use super::*;

    /// Whether a TCP connection from the harness reaches `addr` and a
    /// server there answers.
    fn reaches(addr: SocketAddr) -> bool {
        let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(500)) else {
            return false;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
        let mut byte = [0u8; 1];
        stream.read_exact(&mut byte).is_ok() && byte[0] == b'!'
    }

    /// A one-byte server in node `id`'s namespace, connecting to `peer`
    /// before it answers, so the answer says whether the two can talk.
    fn relay(lab: &NetLab, id: NodeId, peer: Ipv4Addr) -> std::process::Child {
        let script = format!(
            "import socket\n\
             s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n\
             s.bind(('{}', 9000)); s.listen()\n\
             while True:\n\
             \x20   c,_=s.accept()\n\
             \x20   try:\n\
             \x20       p=socket.create_connection(('{peer}', 9001), timeout=0.5); p.close(); c.send(b'!')\n\
             \x20   except OSError:\n\
             \x20       c.send(b'-')\n\
             \x20   c.close()\n",
            lab.addr(id)
        );
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &lab.netns(id), "python3", "-c", &script]);
        command.spawn().expect("python3 in the namespace")
    }

    /// A listener in node `id`'s namespace on port 9001 that accepts anything.
    fn sink(lab: &NetLab, id: NodeId) -> std::process::Child {
        let script = format!(
            "import socket\ns=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n\
             s.bind(('{}', 9001)); s.listen()\nwhile True:\n    c,_=s.accept(); c.close()\n",
            lab.addr(id)
        );
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &lab.netns(id), "python3", "-c", &script]);
        command.spawn().expect("python3 in the namespace")
    }

    #[test]
    fn cuts_drop_one_direction_and_heal() {
        if !NetLab::available() {
            eprintln!("SKIPPED: network namespaces need root, ip and iptables");
            return;
        }
        let mut lab = NetLab::create(&[1, 2]).unwrap();
        let mut children = vec![relay(&lab, 1, lab.addr(2)), sink(&lab, 2)];
        let one = SocketAddr::from((lab.addr(1), 9000));
        let ready = (0..50).any(|_| {
            std::thread::sleep(Duration::from_millis(100));
            reaches(one)
        });
        assert!(ready, "node 1 does not reach node 2 before any cut");

        lab.cut(2, 1).unwrap();
        // 2 cannot send to 1, so 1's connection to 2 gets no answer: the
        // harness still reaches 1, which reports that it cannot reach 2.
        let mut stream = TcpStream::connect_timeout(&one, Duration::from_millis(500)).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let mut byte = [0u8; 1];
        stream.read_exact(&mut byte).unwrap();
        assert_eq!(byte[0], b'-', "a cut from 2 to 1 let a connection through");
        assert_eq!(lab.cuts(), vec![(2, 1)]);

        lab.heal().unwrap();
        assert!(reaches(one), "healing did not restore the link");
        for child in &mut children {
            let _ = child.kill();
            let _ = child.wait();
        }
        // A lab made straight after another one is gone gets its names free.
        drop(lab);
        let again = NetLab::create(&[1, 2]).unwrap();
        drop(again);
        NetLab::create(&[1]).expect("a third lab in a row");
    }
}
