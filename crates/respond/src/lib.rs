//! Counter-measures for fedids: block the sources of incidents.
//!
//! [`plan`] decides which incident sources to block (never an address inside the
//! [`Allowlist`]: critical OT assets, gateways, the site's own networks), and renders the plan as
//! an nftables script ([`Plan::nftables`]: a table with IPv4 and IPv6 sets whose elements time
//! out, and drop rules for them) and as Suricata drop rules ([`Plan::suricata`]). Every element
//! and rule carries its incident id and expiry in a comment.
//!
//! Pure: no I/O, no clock (the caller passes the time the rules are generated at), and nothing
//! here runs `nft`.
//!
//! ```
//! use fedids_respond::{plan, Allowlist, PlanOptions};
//! use fedids_detect::Timestamp;
//! let allow = Allowlist::parse("allow.txt", "10.0.0.0/8  # our plant\n").unwrap();
//! let p = plan(&[], &allow, &PlanOptions { block_secs: 3600, now: Timestamp(0) });
//! assert!(p.nftables().contains("table inet fedids"));
//! ```

#![deny(missing_docs)]

use std::net::IpAddr;

use fedids_detect::{Incident, Timestamp};

/// Suricata drop rules get `sid`s from this base up (a block of the local range, apart from the
/// alert signature ids of `fedids detect`).
pub const DROP_SID_BASE: u32 = 9_200_000;

/// What can go wrong in this crate.
#[derive(Debug, thiserror::Error)]
pub enum RespondError {
    /// An allowlist line is not an address or CIDR block.
    #[error("{input}:{line}:{column}: expected an IP address or CIDR block, found '{value}'")]
    Allowlist {
        /// Source name.
        input: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// The text.
        value: String,
    },
}

/// An address block: an address and a prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Parses `10.0.0.0/8`, `2001:db8::/32` or a bare address (a /32 or /128).
    pub fn parse(text: &str) -> Option<Cidr> {
        let (addr, prefix) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text, None),
        };
        let addr: IpAddr = addr.trim().parse().ok()?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => {
                let p: u8 = p.trim().parse().ok()?;
                (p <= max).then_some(p)?
            }
            None => max,
        };
        Some(Cidr { addr, prefix })
    }

    /// Whether `ip` lies inside the block (IPv4-mapped IPv6 addresses match IPv4 blocks).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        let bits = |ip: IpAddr| -> (u128, u32) {
            match ip {
                IpAddr::V4(v4) => (u128::from(u32::from(v4)), 32),
                IpAddr::V6(v6) => (u128::from(v6), 128),
            }
        };
        let ((net, width), (host, host_width)) = (bits(self.addr), bits(ip));
        if width != host_width {
            return false;
        }
        let shift = width - u32::from(self.prefix);
        shift >= width || (net >> shift) == (host >> shift)
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// Addresses that are never blocked.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Allowlist {
    blocks: Vec<(Cidr, String)>,
}

impl Allowlist {
    /// Parses one CIDR block or address per line; `#` starts a comment (kept as the reason);
    /// blank lines are ignored.
    pub fn parse(source: &str, text: &str) -> Result<Allowlist, RespondError> {
        let mut blocks = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let (body, comment) = match raw.split_once('#') {
                Some((b, c)) => (b, c.trim()),
                None => (raw, ""),
            };
            let value = body.trim();
            if value.is_empty() {
                continue;
            }
            let column = body.find(value).unwrap_or(0) + 1;
            let cidr = Cidr::parse(value).ok_or_else(|| RespondError::Allowlist {
                input: source.to_string(),
                line: i + 1,
                column,
                value: value.to_string(),
            })?;
            blocks.push((cidr, comment.to_string()));
        }
        Ok(Allowlist { blocks })
    }

    /// The block that covers `ip`, with its comment.
    pub fn covering(&self, ip: IpAddr) -> Option<(&Cidr, &str)> {
        self.blocks
            .iter()
            .find(|(c, _)| c.contains(ip))
            .map(|(c, s)| (c, s.as_str()))
    }

    /// Number of blocks.
    pub fn len(&self) -> usize {
        self.blocks.len()
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> bool {
        self.blocks.is_empty()
    }
}

/// How long blocks last, and when the rules are made.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PlanOptions {
    /// A source stays blocked this long (from `now`).
    pub block_secs: u64,
    /// When the rules are generated (expiries are `now + block_secs`).
    pub now: Timestamp,
}

/// One source to block.
#[derive(Debug, Clone, PartialEq)]
pub struct Block {
    /// The source address.
    pub ip: IpAddr,
    /// The incident it comes from (the first, if several share a source).
    pub incident_id: String,
    /// The incident's class.
    pub class: String,
    /// When the block ends.
    pub expires: Timestamp,
}

/// A source that is not blocked, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Skipped {
    /// The incident.
    pub incident_id: String,
    /// Why: allowlisted (with the block), no source address, or already blocked.
    pub reason: String,
}

/// What to block and what not.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// Sources to block, in incident order, each address once.
    pub blocks: Vec<Block>,
    /// Incidents that yield no block.
    pub skipped: Vec<Skipped>,
    opts: PlanOptions,
}

/// Decides what to block.
pub fn plan(incidents: &[Incident], allowlist: &Allowlist, opts: &PlanOptions) -> Plan {
    let mut blocks: Vec<Block> = Vec::new();
    let mut skipped = Vec::new();
    let expires = opts.now.plus_secs(opts.block_secs);
    for inc in incidents {
        let Some(ip) = inc.src_ip else {
            skipped.push(Skipped {
                incident_id: inc.id.clone(),
                reason: "the input names no source address".to_string(),
            });
            continue;
        };
        if let Some((cidr, why)) = allowlist.covering(ip) {
            let why = if why.is_empty() {
                String::new()
            } else {
                format!(" ({why})")
            };
            skipped.push(Skipped {
                incident_id: inc.id.clone(),
                reason: format!("{ip} is allowlisted by {cidr}{why}"),
            });
            continue;
        }
        if let Some(b) = blocks.iter().find(|b| b.ip == ip) {
            skipped.push(Skipped {
                incident_id: inc.id.clone(),
                reason: format!("{ip} is already blocked for incident {}", b.incident_id),
            });
            continue;
        }
        blocks.push(Block {
            ip,
            incident_id: inc.id.clone(),
            class: inc.class.clone(),
            expires,
        });
    }
    Plan {
        blocks,
        skipped,
        opts: *opts,
    }
}

/// Text safe inside an nftables or Suricata quoted comment.
fn quoted(text: &str) -> String {
    text.chars()
        .filter(|c| !matches!(c, '"' | '\\' | ';' | '\n' | '\r'))
        .collect()
}

impl Plan {
    /// The nftables script: `nft -f` replaces table `inet fedids` with sets `blocked4` and
    /// `blocked6` (flag `timeout`; each element times out after the block duration and carries
    /// `incident <id> expires <time>`) and chains on the input and forward hooks that drop
    /// traffic from them.
    pub fn nftables(&self) -> String {
        let secs = self.opts.block_secs.max(1);
        let mut s = String::new();
        s.push_str("#!/usr/sbin/nft -f\n");
        s.push_str(&format!(
            "# fedids respond: {} source(s) blocked for {secs}s from {}\n",
            self.blocks.len(),
            self.opts.now.rfc3339_millis()
        ));
        s.push_str("# Review before loading with: nft -f FILE\n\n");
        // Replace the table atomically: declare it, delete it, define it anew.
        s.push_str("table inet fedids\ndelete table inet fedids\n\n");
        s.push_str("table inet fedids {\n");
        for (name, kind, v4) in [
            ("blocked4", "ipv4_addr", true),
            ("blocked6", "ipv6_addr", false),
        ] {
            s.push_str(&format!(
                "\tset {name} {{\n\t\ttype {kind}\n\t\tflags timeout\n"
            ));
            let elems: Vec<String> = self
                .blocks
                .iter()
                .filter(|b| b.ip.is_ipv4() == v4)
                .map(|b| {
                    format!(
                        "\t\t\t{} timeout {secs}s comment \"incident {} {} expires {}\"",
                        b.ip,
                        b.incident_id,
                        quoted(&b.class),
                        b.expires.rfc3339_millis()
                    )
                })
                .collect();
            if !elems.is_empty() {
                s.push_str(&format!(
                    "\t\telements = {{\n{}\n\t\t}}\n",
                    elems.join(",\n")
                ));
            }
            s.push_str("\t}\n\n");
        }
        for hook in ["input", "forward"] {
            s.push_str(&format!(
                "\tchain {hook} {{\n\t\ttype filter hook {hook} priority filter - 10; policy accept;\n\
                 \t\tip saddr @blocked4 counter drop comment \"fedids: sources of incidents, see set comments\"\n\
                 \t\tip6 saddr @blocked6 counter drop comment \"fedids: sources of incidents, see set comments\"\n\t}}\n"
            ));
            if hook == "input" {
                s.push('\n');
            }
        }
        s.push_str("}\n");
        s
    }

    /// Suricata drop rules (IPS mode), one per blocked source, each preceded by a comment line
    /// and carrying the incident id and expiry in its `msg` and `metadata`.
    pub fn suricata(&self) -> String {
        let mut s = format!(
            "# fedids respond: {} drop rule(s) generated {}; remove each after its expiry\n",
            self.blocks.len(),
            self.opts.now.rfc3339_millis()
        );
        for (i, b) in self.blocks.iter().enumerate() {
            let expires = b.expires.rfc3339_millis();
            s.push_str(&format!(
                "# incident {} ({}) expires {expires}\n",
                b.incident_id,
                quoted(&b.class)
            ));
            s.push_str(&format!(
                "drop ip {} any -> any any (msg:\"FEDIDS block {} incident {} expires {expires}\"; \
                 metadata:fedids_incident {}, fedids_expires {}; sid:{}; rev:1;)\n",
                b.ip,
                quoted(&b.class),
                b.incident_id,
                b.incident_id,
                expires.replace(':', "-"),
                DROP_SID_BASE + i as u32
            ));
        }
        s
    }
}

#[cfg(test)]
mod tests;
