//! Network namespaces for end-to-end tests of transparent mode: a client,
//! a gateway and an upstream, each in its own namespace, linked by veth
//! pairs, with no route the test does not create.
//!
//! ```no_run
//! use btrfly_system::test_support::netns::{Netns, link};
//!
//! let client = Netns::add("client");
//! let gateway = Netns::add("gw");
//! let (c, g) = link(&client, "10.77.1.2/24", &gateway, "10.77.1.1/24");
//! client.set_resolv_conf("nameserver 10.77.1.1\n");
//! let out = client.exec(["cat", "/etc/resolv.conf"]).output();
//! # let _ = (c, g, out);
//! // Dropping the namespaces deletes them (and their veth ends).
//! ```

use std::ffi::OsStr;
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use super::must;

static NEXT: AtomicU32 = AtomicU32::new(0);

fn unique() -> String {
    format!(
        "{}{}",
        std::process::id() % 100_000,
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// A network namespace with `lo` up, deleted on drop together with
/// `/etc/netns/NAME/`.
#[derive(Debug)]
pub struct Netns {
    name: String,
}

impl Netns {
    /// Adds `btrfly-ROLE-UNIQUE` and brings its loopback up.
    ///
    /// # Panics
    /// When `ip netns add` fails (not root).
    pub fn add(role: &str) -> Self {
        let name = format!("btrfly-{role}-{}", unique());
        must(Command::new("ip").args(["netns", "add", &name]));
        let ns = Self { name };
        must(Command::new("ip").args(["-n", &ns.name, "link", "set", "lo", "up"]));
        ns
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `ip netns exec NAME ARGS...`, not yet run.
    pub fn exec<I, S>(&self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name]).args(args);
        cmd
    }

    /// The directory `ip netns exec` bind-mounts files from.
    pub fn etc_dir(&self) -> PathBuf {
        PathBuf::from("/etc/netns").join(&self.name)
    }

    /// Writes `/etc/netns/NAME/resolv.conf`, which every `ip netns exec
    /// NAME` sees as its `/etc/resolv.conf` (a bind mount).
    ///
    /// # Panics
    /// When the file cannot be written.
    pub fn set_resolv_conf(&self, text: &str) -> PathBuf {
        let dir = self.etc_dir();
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
        let path = dir.join("resolv.conf");
        std::fs::write(&path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        path
    }

    /// Adds a default route via `gateway` (for a client whose only way out
    /// is the gateway).
    pub fn default_route(&self, gateway: IpAddr) {
        must(Command::new("ip").args([
            "-n",
            &self.name,
            "route",
            "add",
            "default",
            "via",
            &gateway.to_string(),
        ]));
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
        // /etc/netns itself stays: iproute2's directory, shared by every
        // namespace (removing it would race with other tests).
        let _ = std::fs::remove_dir_all(self.etc_dir());
    }
}

/// One end of a veth pair: its interface name and address.
#[derive(Debug, Clone)]
pub struct End {
    /// The interface name inside its namespace.
    pub ifname: String,
    /// Its address (without the prefix length).
    pub addr: IpAddr,
}

/// Links `a` and `b` with a veth pair, gives each end its address
/// (`"10.77.1.2/24"`) and brings both up. The pair disappears when either
/// namespace is deleted.
///
/// # Panics
/// When an `ip` command fails or an address does not parse.
pub fn link(a: &Netns, a_cidr: &str, b: &Netns, b_cidr: &str) -> (End, End) {
    let id = unique();
    // Interface names have at most 15 bytes.
    let (ia, ib) = (format!("bva{id}"), format!("bvb{id}"));
    assert!(ia.len() <= 15, "interface name {ia} too long");
    must(Command::new("ip").args([
        "link", "add", &ia, "netns", &a.name, "type", "veth", "peer", "name", &ib, "netns", &b.name,
    ]));
    let mut ends = Vec::new();
    for (ns, ifname, cidr) in [(a, &ia, a_cidr), (b, &ib, b_cidr)] {
        must(Command::new("ip").args(["-n", &ns.name, "addr", "add", cidr, "dev", ifname]));
        must(Command::new("ip").args(["-n", &ns.name, "link", "set", ifname, "up"]));
        let addr = cidr
            .split('/')
            .next()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("not an address: {cidr}"));
        ends.push(End {
            ifname: ifname.clone(),
            addr,
        });
    }
    let b_end = ends.pop().unwrap_or_else(|| unreachable!());
    let a_end = ends.pop().unwrap_or_else(|| unreachable!());
    (a_end, b_end)
}
