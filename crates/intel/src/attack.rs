//! Which MITRE ATT&CK techniques a threat kind stands for.
//!
//! | threat kind | ATT&CK (Enterprise) | ATT&CK for ICS |
//! |---|---|---|
//! | denial of service | T1498 Network Denial of Service, T1499 Endpoint Denial of Service | T0814 Denial of Service |
//! | reconnaissance | T1046 Network Service Discovery, T1595 Active Scanning | T0846 Remote System Discovery |
//! | brute force | T1110 Brute Force | — |
//! | remote access | T1133 External Remote Services, T1078 Valid Accounts | T0822 External Remote Services |
//! | privilege escalation | T1068 Exploitation for Privilege Escalation | T0890 Exploitation for Privilege Escalation |
//! | web application attack | T1190 Exploit Public-Facing Application | — |
//! | exploitation | T1190 Exploit Public-Facing Application, T1210 Exploitation of Remote Services | T0866 Exploitation of Remote Services |
//! | malware | T1071 Application Layer Protocol, T1219 Remote Access Software | T0869 Standard Application Layer Protocol |
//! | other attack | — | — |

use fedids_detect::ThreatKind;

/// An ATT&CK technique.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Technique {
    /// `T1498`, `T0814`, ...
    pub id: &'static str,
    /// The technique's name.
    pub name: &'static str,
    /// True for ATT&CK for ICS, false for Enterprise.
    pub ics: bool,
}

impl Technique {
    const fn enterprise(id: &'static str, name: &'static str) -> Technique {
        Technique {
            id,
            name,
            ics: false,
        }
    }

    const fn ics(id: &'static str, name: &'static str) -> Technique {
        Technique {
            id,
            name,
            ics: true,
        }
    }

    /// The STIX `external_references` source name.
    pub fn source_name(&self) -> &'static str {
        if self.ics {
            "mitre-ics-attack"
        } else {
            "mitre-attack"
        }
    }

    /// The technique's page.
    pub fn url(&self) -> String {
        format!("https://attack.mitre.org/techniques/{}/", self.id)
    }
}

/// The techniques of a threat kind (see the module table).
pub fn techniques(kind: ThreatKind) -> &'static [Technique] {
    use ThreatKind::*;
    const DOS: [Technique; 3] = [
        Technique::enterprise("T1498", "Network Denial of Service"),
        Technique::enterprise("T1499", "Endpoint Denial of Service"),
        Technique::ics("T0814", "Denial of Service"),
    ];
    const RECON: [Technique; 3] = [
        Technique::enterprise("T1046", "Network Service Discovery"),
        Technique::enterprise("T1595", "Active Scanning"),
        Technique::ics("T0846", "Remote System Discovery"),
    ];
    const BRUTE: [Technique; 1] = [Technique::enterprise("T1110", "Brute Force")];
    const REMOTE: [Technique; 3] = [
        Technique::enterprise("T1133", "External Remote Services"),
        Technique::enterprise("T1078", "Valid Accounts"),
        Technique::ics("T0822", "External Remote Services"),
    ];
    const PRIV: [Technique; 2] = [
        Technique::enterprise("T1068", "Exploitation for Privilege Escalation"),
        Technique::ics("T0890", "Exploitation for Privilege Escalation"),
    ];
    const WEB: [Technique; 1] = [Technique::enterprise(
        "T1190",
        "Exploit Public-Facing Application",
    )];
    const EXPLOIT: [Technique; 3] = [
        Technique::enterprise("T1190", "Exploit Public-Facing Application"),
        Technique::enterprise("T1210", "Exploitation of Remote Services"),
        Technique::ics("T0866", "Exploitation of Remote Services"),
    ];
    const MALWARE: [Technique; 3] = [
        Technique::enterprise("T1071", "Application Layer Protocol"),
        Technique::enterprise("T1219", "Remote Access Software"),
        Technique::ics("T0869", "Standard Application Layer Protocol"),
    ];
    match kind {
        DenialOfService => &DOS,
        Reconnaissance => &RECON,
        BruteForce => &BRUTE,
        RemoteAccess => &REMOTE,
        PrivilegeEscalation => &PRIV,
        WebAttack => &WEB,
        Exploit => &EXPLOIT,
        Malware => &MALWARE,
        Other => &[],
    }
}
