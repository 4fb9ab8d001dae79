//! Which TCP ports processes in the workspace listen on: the dev servers a
//! preview can open.
//!
//! Read from the kernel's socket tables (`/proc/<pid>/net/tcp` and `tcp6`,
//! state `0A` = listening), never by probing ports:
//!
//! - inside a devcontainer, the container's network namespace is the
//!   workspace's, so every listening socket there counts (read through the
//!   container's first process, `docker inspect`'s `State.Pid`);
//! - with shells on the host (dev mode, or no container), only sockets held
//!   by the agent's descendants count (the shells and what they started):
//!   the host's other services are not the workspace's and are never listed
//!   nor reachable through a preview.
//!
//! Connecting to a port goes the same way: into the container's network
//! namespace (`setns` on a thread of its own, so a server bound to the
//! container's `localhost` is reachable), or to the host's loopback.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sam_core::wire::{ListeningPort, MAX_LISTENING_PORTS};

/// One listening socket from a `/proc/net/tcp{,6}` table.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct ListeningSocket {
    /// Local port.
    pub port: u16,
    /// The socket's inode (what `/proc/<pid>/fd/*` links name).
    pub inode: u64,
}

/// The listening sockets of a `/proc/net/tcp` or `/proc/net/tcp6` table.
/// Lines that do not parse are skipped (the kernel's format is fixed; a
/// truncated read loses at most its last line).
///
/// ```
/// let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
///    0: 0100007F:0BB8 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 4242 1 0 100 0 0 10 0\n\
///    1: 0100007F:0BB9 0100007F:D431 01 00000000:00000000 00:00000000 00000000  1000        0 4243 1 0 20 4 30 10 -1\n";
/// let sockets = sam_agent::ports::parse_table(table);
/// assert_eq!(sockets, vec![sam_agent::ports::ListeningSocket { port: 3000, inode: 4242 }]);
/// ```
pub fn parse_table(text: &str) -> Vec<ListeningSocket> {
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let local = fields.nth(1)?;
            let state = fields.nth(1)?;
            if state != "0A" {
                return None;
            }
            let port = u16::from_str_radix(local.rsplit_once(':')?.1, 16).ok()?;
            // tx:rx, tr:when, retrnsmt, uid, timeout, then the inode.
            let inode = fields.nth(5)?.parse().ok()?;
            (port > 0 && inode > 0).then_some(ListeningSocket { port, inode })
        })
        .collect()
}

/// Where the workspace's processes run.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum PortScope {
    /// Shells on the host: the agent's descendants.
    Host,
    /// A container whose first process is `pid` (in the host's pid space).
    Container {
        /// `State.Pid` of the container.
        pid: u32,
    },
}

/// The listening ports of `scope`, lowest first, each once (a server on
/// IPv4 and IPv6 is one port), at most [`MAX_LISTENING_PORTS`]. Sockets of
/// process `agent` itself (the agent's own port) are never listed.
pub fn scan(scope: PortScope, agent: u32) -> Vec<ListeningPort> {
    scan_in(Path::new("/proc"), scope, agent)
}

fn scan_in(proc: &Path, scope: PortScope, agent: u32) -> Vec<ListeningPort> {
    let table_pid = match scope {
        PortScope::Host => agent,
        PortScope::Container { pid } => pid,
    };
    let mut sockets = Vec::new();
    for table in ["tcp", "tcp6"] {
        if let Ok(text) = std::fs::read_to_string(proc.join(table_pid.to_string()).join("net").join(table)) {
            sockets.extend(parse_table(&text));
        }
    }
    if sockets.is_empty() {
        return Vec::new();
    }
    let members = match scope {
        PortScope::Host => descendants(proc, agent),
        PortScope::Container { pid } => same_network(proc, pid),
    };
    let wanted: HashSet<u64> = sockets.iter().map(|s| s.inode).collect();
    let owners = socket_owners(proc, &members, &wanted);
    let mut ports: BTreeMap<u16, Option<String>> = BTreeMap::new();
    for socket in sockets {
        let owner = owners.get(&socket.inode).copied();
        if owner == Some(agent) {
            continue;
        }
        // On the host only what the workspace's processes hold counts.
        if scope == PortScope::Host && owner.is_none() {
            continue;
        }
        let name = owner.and_then(|pid| comm(proc, pid));
        let entry = ports.entry(socket.port).or_default();
        if entry.is_none() {
            *entry = name;
        }
    }
    ports.into_iter().take(MAX_LISTENING_PORTS).map(|(port, process)| ListeningPort { port, process }).collect()
}

fn pids(proc: &Path) -> impl Iterator<Item = u32> {
    std::fs::read_dir(proc).into_iter().flatten().filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
}

/// `pid` and every process below it.
fn descendants(proc: &Path, root: u32) -> Vec<u32> {
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    for pid in pids(proc) {
        let Ok(stat) = std::fs::read_to_string(proc.join(pid.to_string()).join("stat")) else { continue };
        // The command name may hold spaces and parentheses: fields follow the last `)`.
        let Some((_, rest)) = stat.rsplit_once(')') else { continue };
        if let Some(ppid) = rest.split_whitespace().nth(1).and_then(|p| p.parse::<u32>().ok()) {
            children.entry(ppid).or_default().push(pid);
        }
    }
    let mut out = vec![root];
    let mut i = 0;
    while let Some(pid) = out.get(i).copied() {
        if let Some(kids) = children.get(&pid) {
            out.extend(kids.iter().copied().filter(|k| *k != root));
        }
        i += 1;
        if out.len() > 100_000 {
            break;
        }
    }
    out
}

/// The processes in the network namespace of `pid`.
fn same_network(proc: &Path, pid: u32) -> Vec<u32> {
    let ns = |p: u32| std::fs::read_link(proc.join(p.to_string()).join("ns").join("net")).ok();
    let Some(target) = ns(pid) else { return vec![pid] };
    pids(proc).filter(|p| ns(*p).as_ref() == Some(&target)).collect()
}

/// Which of `pids` holds each socket of `wanted` (the first found).
fn socket_owners(proc: &Path, pids: &[u32], wanted: &HashSet<u64>) -> HashMap<u64, u32> {
    let mut owners = HashMap::new();
    for pid in pids {
        let Ok(fds) = std::fs::read_dir(proc.join(pid.to_string()).join("fd")) else { continue };
        for fd in fds.flatten() {
            let Ok(link) = std::fs::read_link(fd.path()) else { continue };
            let inode = link
                .to_str()
                .and_then(|l| l.strip_prefix("socket:["))
                .and_then(|l| l.strip_suffix(']'))
                .and_then(|l| l.parse::<u64>().ok());
            if let Some(inode) = inode.filter(|i| wanted.contains(i)) {
                owners.entry(inode).or_insert(*pid);
            }
        }
        if owners.len() == wanted.len() {
            break;
        }
    }
    owners
}

fn comm(proc: &Path, pid: u32) -> Option<String> {
    let name = std::fs::read_to_string(proc.join(pid.to_string()).join("comm")).ok()?;
    let name: String = name.trim().chars().filter(|c| !c.is_control()).take(64).collect();
    (!name.is_empty()).then_some(name)
}

/// Opens a TCP connection to `port` on the loopback of `scope`: IPv4
/// first, then IPv6 (a server bound to `localhost` may have either).
pub async fn connect(scope: PortScope, port: u16) -> std::io::Result<tokio::net::TcpStream> {
    match scope {
        PortScope::Host => match tokio::net::TcpStream::connect(("127.0.0.1", port)).await {
            Ok(stream) => Ok(stream),
            Err(_) => tokio::net::TcpStream::connect(("::1", port)).await,
        },
        PortScope::Container { pid } => {
            // A thread of its own: `setns` changes the calling thread's
            // namespace for good, and a pool thread would carry it into
            // unrelated work. The socket stays in the container's namespace.
            let (tx, rx) = tokio::sync::oneshot::channel();
            std::thread::Builder::new().name("sam-preview-connect".into()).spawn(move || {
                let _ = tx.send(connect_in_namespace(pid, port));
            })?;
            let stream = rx.await.map_err(|_| std::io::Error::other("the connecting thread ended"))??;
            stream.set_nonblocking(true)?;
            let stream = tokio::net::TcpStream::from_std(stream)?;
            let _ = stream.set_nodelay(true);
            Ok(stream)
        }
    }
}

fn connect_in_namespace(pid: u32, port: u16) -> std::io::Result<std::net::TcpStream> {
    let ns = std::fs::File::open(format!("/proc/{pid}/ns/net"))?;
    rustix::thread::move_into_link_name_space(
        std::os::fd::AsFd::as_fd(&ns),
        Some(rustix::thread::LinkNameSpaceType::Network),
    )?;
    let timeout = Duration::from_secs(5);
    std::net::TcpStream::connect_timeout(&(std::net::Ipv4Addr::LOCALHOST, port).into(), timeout)
        .or_else(|_| std::net::TcpStream::connect_timeout(&(std::net::Ipv6Addr::LOCALHOST, port).into(), timeout))
}

/// The workspace's listening ports, scanned at most once per
/// [`Ports::FRESH`] (a page polls, previews check every connection).
#[derive(Debug, Default)]
pub struct Ports {
    last: Mutex<Option<(Instant, Vec<ListeningPort>)>>,
    /// The container's first process, looked up once per container.
    container_pid: Mutex<Option<(String, u32)>>,
}

impl Ports {
    /// How long a scan is reused.
    pub const FRESH: Duration = Duration::from_secs(1);

    /// The last scan, when younger than [`Self::FRESH`].
    pub fn cached(&self) -> Option<Vec<ListeningPort>> {
        let last = self.last.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        last.as_ref().filter(|(at, _)| at.elapsed() < Self::FRESH).map(|(_, ports)| ports.clone())
    }

    /// The last scan, however old (empty before the first).
    pub fn last(&self) -> Vec<ListeningPort> {
        let last = self.last.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        last.as_ref().map(|(_, ports)| ports.clone()).unwrap_or_default()
    }

    /// Records a scan.
    pub fn store(&self, ports: Vec<ListeningPort>) {
        *self.last.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some((Instant::now(), ports));
    }

    /// The container's pid, remembered for `container`.
    pub fn container_pid(&self, container: &str) -> Option<u32> {
        let known = self.container_pid.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        known.as_ref().filter(|(c, _)| c == container).map(|(_, pid)| *pid)
    }

    /// Remembers the container's pid.
    pub fn set_container_pid(&self, container: &str, pid: u32) {
        *self.container_pid.lock().unwrap_or_else(std::sync::PoisonError::into_inner) =
            Some((container.to_owned(), pid));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_gives_listening_sockets_only() {
        let v6 = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
           0: 00000000000000000000000000000000:1435 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 91 1 0 100 0 0 10 0\n\
           1: garbage\n\
           2: 00000000000000000000000000000000:0000 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 92 1 0 100 0 0 10 0\n";
        assert_eq!(parse_table(v6), vec![ListeningSocket { port: 5173, inode: 91 }]);
        assert!(parse_table("").is_empty());
    }

    #[test]
    fn on_the_host_only_the_agents_descendants_count() {
        // A listener of a child (a workspace's server) and one of this
        // process (the agent's own port).
        let own = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let own_port = own.local_addr().unwrap().port();
        let mut child = std::process::Command::new("python3")
            .args(["-c", "import socket,sys,time\ns=socket.socket(); s.bind(('127.0.0.1',0)); s.listen()\nprint(s.getsockname()[1], flush=True); time.sleep(30)"])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("python3");
        let mut line = String::new();
        std::io::BufRead::read_line(&mut std::io::BufReader::new(child.stdout.take().unwrap()), &mut line).unwrap();
        let port: u16 = line.trim().parse().unwrap();
        let me = std::process::id();
        let listed = scan(PortScope::Host, me);
        // This process is not below the child: its listener is not the child's.
        let below_child = scan(PortScope::Host, child.id());
        let _ = child.kill();
        let _ = child.wait();
        let ours: Vec<_> = listed.iter().filter(|p| p.port == port).collect();
        assert_eq!(ours.len(), 1, "{listed:?} lacks {port}");
        assert_eq!(ours[0].process.as_deref(), Some("python3"));
        assert!(listed.iter().all(|p| p.port != own_port), "the agent's own port is not the workspace's");
        assert!(below_child.iter().all(|p| p.port != own_port && p.port != port), "{below_child:?}");
    }
}
