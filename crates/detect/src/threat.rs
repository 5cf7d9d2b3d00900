//! What a predicted class means: its kind of threat, Suricata severity and category.

use serde::{Deserialize, Serialize};

/// The kind of threat a class name stands for, across datasets (NSL-KDD categories and attack
/// names, UNSW-NB15 categories, CIC-IDS-2017 labels).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ThreatKind {
    /// Denial of service: floods, resource exhaustion (`DoS`, `DDoS`, `neptune`, `smurf`, ...).
    DenialOfService,
    /// Scanning and reconnaissance (`Probe`, `PortScan`, `Reconnaissance`, `nmap`, ...).
    Reconnaissance,
    /// Password guessing (`FTP-Patator`, `SSH-Patator`, `guess_passwd`, ...).
    BruteForce,
    /// Remote to local: unauthorised access from outside (`R2L`, `warezclient`, ...).
    RemoteAccess,
    /// User to root: privilege escalation (`U2R`, `buffer_overflow`, `rootkit`, ...).
    PrivilegeEscalation,
    /// Attacks on web applications (`Web Attack - XSS`, `Sql Injection`, ...).
    WebAttack,
    /// Exploitation of a vulnerable service (`Exploits`, `Shellcode`, `Heartbleed`).
    Exploit,
    /// Bots, backdoors and worms: command and control, self-propagation.
    Malware,
    /// Anything else flagged as an attack (binary `attack`, `Generic`, `Fuzzers`, unknown names).
    Other,
}

impl ThreatKind {
    /// The kind of a class name (case-insensitive; the first matching rule wins).
    pub fn of_class(name: &str) -> ThreatKind {
        let n = name.trim().to_ascii_lowercase();
        let has = |words: &[&str]| words.iter().any(|w| n.contains(w));
        use ThreatKind::*;
        if has(&["web attack", "sql injection", "xss", "sql_injection"]) {
            WebAttack
        } else if has(&["patator", "brute", "guess_passwd", "ftp_write", "snmpguess"]) {
            BruteForce
        } else if has(&[
            "dos",
            "hulk",
            "slowloris",
            "goldeneye",
            "slowhttptest",
            "neptune",
            "smurf",
            "teardrop",
            "pod",
            "apache2",
            "udpstorm",
            "processtable",
            "mailbomb",
            "flood",
        ]) || n == "back"
            || n == "land"
        {
            DenialOfService
        } else if has(&[
            "probe",
            "portscan",
            "scan",
            "recon",
            "nmap",
            "satan",
            "ipsweep",
            "portsweep",
            "saint",
            "analysis",
        ]) {
            Reconnaissance
        } else if has(&[
            "u2r",
            "buffer_overflow",
            "rootkit",
            "loadmodule",
            "perl",
            "sqlattack",
            "xterm",
            "ps",
        ]) && !has(&["ipsweep", "portsweep"])
        {
            PrivilegeEscalation
        } else if has(&[
            "r2l",
            "warez",
            "imap",
            "multihop",
            "phf",
            "spy",
            "xlock",
            "xsnoop",
            "sendmail",
            "named",
            "httptunnel",
            "worm",
            "infiltration",
        ]) {
            if has(&["worm"]) {
                Malware
            } else {
                RemoteAccess
            }
        } else if has(&["exploit", "shellcode", "heartbleed"]) {
            Exploit
        } else if has(&["bot", "backdoor", "trojan", "malicious", "c&c", "malware"]) {
            Malware
        } else {
            Other
        }
    }

    /// Suricata severity: 1 (high) to 3 (low). Compromise of a host (access, escalation,
    /// exploitation, malware, web attacks) is 1; denial of service, brute force and unknown
    /// attacks are 2; reconnaissance is 3.
    pub fn severity(self) -> u8 {
        use ThreatKind::*;
        match self {
            RemoteAccess | PrivilegeEscalation | WebAttack | Exploit | Malware => 1,
            DenialOfService | BruteForce | Other => 2,
            Reconnaissance => 3,
        }
    }

    /// The Suricata classification (`classification.config` description) that fits.
    pub fn category(self) -> &'static str {
        use ThreatKind::*;
        match self {
            DenialOfService => "Attempted Denial of Service",
            Reconnaissance => "Detection of a Network Scan",
            BruteForce => "Attempted User Privilege Gain",
            RemoteAccess => "Attempted User Privilege Gain",
            PrivilegeEscalation => "Attempted Administrator Privilege Gain",
            WebAttack => "Web Application Attack",
            Exploit => "Attempted Administrator Privilege Gain",
            Malware => "A Network Trojan was detected",
            Other => "Misc Attack",
        }
    }

    /// A short human name.
    pub fn title(self) -> &'static str {
        use ThreatKind::*;
        match self {
            DenialOfService => "denial of service",
            Reconnaissance => "reconnaissance",
            BruteForce => "brute force",
            RemoteAccess => "remote access",
            PrivilegeEscalation => "privilege escalation",
            WebAttack => "web application attack",
            Exploit => "exploitation",
            Malware => "malware",
            Other => "attack",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn class_names() {
        use ThreatKind::*;
        let table = [
            ("DoS", DenialOfService),
            ("DDoS", DenialOfService),
            ("DoS Hulk", DenialOfService),
            ("neptune", DenialOfService),
            ("back", DenialOfService),
            ("Probe", Reconnaissance),
            ("PortScan", Reconnaissance),
            ("Reconnaissance", Reconnaissance),
            ("ipsweep", Reconnaissance),
            ("portsweep", Reconnaissance),
            ("Analysis", Reconnaissance),
            ("FTP-Patator", BruteForce),
            ("guess_passwd", BruteForce),
            ("R2L", RemoteAccess),
            ("warezclient", RemoteAccess),
            ("Infiltration", RemoteAccess),
            ("U2R", PrivilegeEscalation),
            ("buffer_overflow", PrivilegeEscalation),
            ("Web Attack \u{2013} XSS", WebAttack),
            ("Exploits", Exploit),
            ("Shellcode", Exploit),
            ("Bot", Malware),
            ("Backdoor", Malware),
            ("Worms", Malware),
            ("attack", Other),
            ("Generic", Other),
            ("Fuzzers", Other),
        ];
        for (name, want) in table {
            assert_eq!(ThreatKind::of_class(name), want, "{name}");
        }
        assert_eq!(DenialOfService.severity(), 2);
        assert_eq!(Reconnaissance.severity(), 3);
        assert_eq!(PrivilegeEscalation.severity(), 1);
    }
}
