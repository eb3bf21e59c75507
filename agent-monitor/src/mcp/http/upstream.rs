//! Where the HTTP proxy relays to, and which process serves there.

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs},
    sync::Mutex,
};

use super::HttpError;
use crate::mcp::PREFIX;

/// The upstream MCP endpoint: plain HTTP.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Upstream {
    /// `host:port`, also sent as `Host`.
    pub authority: String,
    /// The URL's path without its trailing `/`: each request's path is
    /// appended to it.
    pub base_path: String,
    /// The addresses a loopback upstream listens on, to find its process
    /// by (empty when the upstream is another host).
    pub loopback: Vec<SocketAddr>,
}

impl Upstream {
    pub fn parse(text: &str) -> Result<Upstream, HttpError> {
        let url = url::Url::parse(text).map_err(|e| HttpError::Upstream {
            url: text.to_string(),
            why: e.to_string(),
        })?;
        let bad = |why: &str| HttpError::Upstream {
            url: text.to_string(),
            why: why.to_string(),
        };
        match url.scheme() {
            "http" => {}
            "https" => return Err(HttpError::Tls(text.to_string())),
            other => return Err(bad(&format!("scheme `{other}` is not http"))),
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(bad("credentials in the URL are not supported"));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(bad("the URL may have no query or fragment"));
        }
        let host = url.host().ok_or_else(|| bad("no host"))?;
        let port = url.port_or_known_default().unwrap_or(80);
        let (authority, loopback) = match host {
            url::Host::Ipv4(ip) => (format!("{ip}:{port}"), loopback_addrs(ip.into(), port)),
            url::Host::Ipv6(ip) => (format!("[{ip}]:{port}"), loopback_addrs(ip.into(), port)),
            url::Host::Domain(name) => {
                let resolved: Vec<SocketAddr> = (name, port)
                    .to_socket_addrs()
                    .map(|addrs| addrs.filter(|a| a.ip().is_loopback()).collect())
                    .unwrap_or_default();
                let mut loopback = Vec::new();
                for addr in resolved {
                    loopback.extend(loopback_addrs(addr.ip(), port));
                }
                (format!("{name}:{port}"), loopback)
            }
        };
        Ok(Upstream {
            authority,
            base_path: url.path().trim_end_matches('/').to_string(),
            loopback,
        })
    }

    /// The upstream URI of a request for `path_and_query`.
    pub fn uri(&self, path_and_query: &str) -> String {
        format!(
            "http://{}{}{}",
            self.authority, self.base_path, path_and_query
        )
    }
}

/// Where a loopback server may listen for `ip:port`: that address, or the
/// wildcard of its family.
fn loopback_addrs(ip: IpAddr, port: u16) -> Vec<SocketAddr> {
    if !ip.is_loopback() {
        return Vec::new();
    }
    let any: IpAddr = match ip {
        IpAddr::V4(_) => Ipv4Addr::UNSPECIFIED.into(),
        IpAddr::V6(_) => Ipv6Addr::UNSPECIFIED.into(),
    };
    vec![SocketAddr::new(ip, port), SocketAddr::new(any, port)]
}

/// The process calls bind to: `--server-pid`, else the owner of the
/// upstream's listening socket, looked up again when it is gone (the
/// server restarted).
pub struct ServerPid {
    fixed: Option<u32>,
    loopback: Vec<SocketAddr>,
    found: Mutex<Found>,
}

#[derive(Default)]
struct Found {
    pid: Option<u32>,
    /// "Not found" was said once on stderr.
    reported: bool,
}

impl ServerPid {
    pub fn new(fixed: Option<u32>, upstream: &Upstream) -> ServerPid {
        ServerPid {
            fixed,
            loopback: upstream.loopback.clone(),
            found: Mutex::new(Found::default()),
        }
    }

    /// The pid to declare calls with, if one is known.
    pub fn get(&self) -> Option<u32> {
        if self.fixed.is_some() {
            return self.fixed;
        }
        let mut found = self.found.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(pid) = found.pid
            && std::path::Path::new(&format!("/proc/{pid}")).exists()
        {
            return Some(pid);
        }
        found.pid = self.loopback.iter().find_map(|addr| {
            crate::proc_net::tcp_socket_owner(*addr, None)
                .ok()
                .flatten()
        });
        if found.pid.is_none() && !found.reported {
            found.reported = true;
            eprintln!(
                "{PREFIX}: {}; declaring calls without `pid` (give --server-pid to bind them to the server)",
                if self.loopback.is_empty() {
                    "the upstream is not on this host's loopback, so its process is unknown"
                } else {
                    "no process of ours listens at the upstream's address"
                }
            );
        }
        found.pid
    }
}
