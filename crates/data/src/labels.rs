//! Label mapping: which class a record's label cell belongs to, for each format and task.

use std::collections::{HashMap, HashSet};
use std::hash::BuildHasherDefault;

use crate::parse::Fnv;
use crate::{FormatSpec, Task};

/// Label maps, looked up once per row: FNV, since SipHash's setup dominates for short names.
type NameMap<V> = HashMap<String, V, BuildHasherDefault<Fnv>>;
/// Label sets, as [`NameMap`].
type NameSet = HashSet<String, BuildHasherDefault<Fnv>>;

/// Binary class names, for every format: benign first.
pub const BINARY_CLASSES: [&str; 2] = ["normal", "attack"];

/// NSL-KDD and KDD Cup 99 multiclass class names (the usual 5-class task).
pub const KDD_CLASSES: [&str; 5] = ["normal", "DoS", "Probe", "R2L", "U2R"];

/// UNSW-NB15 multiclass class names (`attack_cat` values), benign first.
pub const UNSW_CLASSES: [&str; 10] = [
    "Normal",
    "Analysis",
    "Backdoor",
    "DoS",
    "Exploits",
    "Fuzzers",
    "Generic",
    "Reconnaissance",
    "Shellcode",
    "Worms",
];

/// NSL-KDD / KDD Cup 99 attack names by category, including the names that occur only in the
/// test sets.
const KDD_ATTACKS: [(&str, &[&str]); 4] = [
    (
        "DoS",
        &[
            "back",
            "land",
            "neptune",
            "pod",
            "smurf",
            "teardrop",
            "mailbomb",
            "apache2",
            "udpstorm",
            "processtable",
        ],
    ),
    (
        "Probe",
        &["satan", "ipsweep", "nmap", "portsweep", "mscan", "saint"],
    ),
    (
        "R2L",
        &[
            "guess_passwd",
            "ftp_write",
            "imap",
            "phf",
            "multihop",
            "warezmaster",
            "warezclient",
            "spy",
            "xlock",
            "xsnoop",
            "snmpguess",
            "snmpgetattack",
            "sendmail",
            "named",
            "worm",
            "httptunnel",
        ],
    ),
    (
        "U2R",
        &[
            "buffer_overflow",
            "loadmodule",
            "perl",
            "rootkit",
            "sqlattack",
            "xterm",
            "ps",
        ],
    ),
];

/// The 5-class category of an NSL-KDD / KDD Cup 99 attack name (`normal` maps to `normal`), or
/// `None` for a name outside the mapping. A trailing dot (`smurf.`) is not accepted here.
pub fn kdd_category(attack_name: &str) -> Option<&'static str> {
    if attack_name == "normal" {
        return Some("normal");
    }
    KDD_ATTACKS
        .iter()
        .find(|(_, names)| names.contains(&attack_name))
        .map(|(category, _)| *category)
}

/// The classes of a task that a format fixes in advance; `None` when they are learned from the
/// training data (multiclass generic CSV, NSL-KDD / KDD99 attack names).
pub(crate) fn fixed_classes(format: &FormatSpec, task: Task) -> Option<Vec<String>> {
    let names: &[&str] = match (format, task) {
        (_, Task::Binary) => &BINARY_CLASSES,
        (FormatSpec::NslKdd | FormatSpec::Kdd99, Task::Multiclass) => &KDD_CLASSES,
        (FormatSpec::UnswNb15, Task::Multiclass) => &UNSW_CLASSES,
        (FormatSpec::UnswNb15, Task::AttackName) => &UNSW_CLASSES,
        (FormatSpec::Csv(_) | FormatSpec::ZeekConn, Task::Multiclass | Task::AttackName) => {
            return None
        }
        // Attack names are learned from the training data.
        (FormatSpec::NslKdd | FormatSpec::Kdd99, Task::AttackName) => return None,
    };
    Some(names.iter().map(|s| s.to_string()).collect())
}

/// How a label cell becomes a class index.
#[derive(Debug, Clone)]
pub(crate) enum LabelRule {
    /// Look the (trimmed) cell up; `strip_dot` removes one trailing `.` first (KDD Cup 99).
    Lookup { map: NameMap<u32>, strip_dot: bool },
    /// NSL-KDD / KDD Cup 99 attack names while learning: `normal` is class 0, every attack name
    /// the category table knows is a class learned from the data; `strip_dot` as for `Lookup`.
    KddOpen { strip_dot: bool },
    /// A `0`/`1` flag (UNSW-NB15 `label`).
    Flag { normal_idx: u32, attack_idx: u32 },
    /// Generic CSV binary: benign values versus everything else.
    Benign {
        benign: NameSet,
        benign_idx: u32,
        attack_idx: u32,
    },
    /// Generic CSV multiclass with known classes: benign values are class 0, the rest are looked
    /// up.
    BenignOrLookup { benign: NameSet, map: NameMap<u32> },
    /// Generic CSV multiclass while learning: benign values are class 0, every other value is a
    /// class learned from the data.
    BenignOpen { benign: NameSet },
}

/// The result of resolving one label cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LabelOutcome<'a> {
    /// A known class index.
    Class(u32),
    /// A class being learned (only under [`LabelRule::BenignOpen`]).
    Learned(&'a str),
    /// A well-formed label the mapping does not know.
    Unmapped,
    /// A malformed cell; the payload says what was expected.
    Invalid(&'static str),
}

impl LabelRule {
    /// Builds the rule for `format` and `task`, mapping onto `classes` (`None` while learning
    /// generic CSV multiclass classes). `Err` carries a message for an unusable class list.
    pub(crate) fn new(
        format: &FormatSpec,
        task: Task,
        classes: Option<&[String]>,
    ) -> Result<LabelRule, String> {
        let index = |name: &str| -> Result<u32, String> {
            classes
                .and_then(|c| c.iter().position(|x| x == name))
                .map(|i| i as u32)
                .ok_or_else(|| format!("the classes lack '{name}'"))
        };
        let to_map = |pairs: Vec<(String, Option<u32>)>| -> NameMap<u32> {
            pairs
                .into_iter()
                .filter_map(|(k, v)| v.map(|v| (k, v)))
                .collect()
        };
        let class_of = |name: &str| -> Option<u32> {
            classes
                .and_then(|c| c.iter().position(|x| x == name))
                .map(|i| i as u32)
        };
        let strip_dot = matches!(format, FormatSpec::Kdd99);
        match format {
            FormatSpec::NslKdd | FormatSpec::Kdd99 if task == Task::AttackName => match classes {
                None => Ok(LabelRule::KddOpen { strip_dot }),
                Some(classes) => Ok(LabelRule::Lookup {
                    map: classes
                        .iter()
                        .enumerate()
                        .map(|(i, c)| (c.clone(), i as u32))
                        .collect(),
                    strip_dot,
                }),
            },
            FormatSpec::NslKdd | FormatSpec::Kdd99 => {
                // "normal" is class 0's name under both tasks.
                let mut pairs = vec![("normal".to_string(), class_of("normal"))];
                for (category, names) in KDD_ATTACKS {
                    for name in names {
                        let class = match task {
                            Task::Binary => class_of(BINARY_CLASSES[1]),
                            Task::Multiclass | Task::AttackName => class_of(category),
                        };
                        pairs.push((name.to_string(), class));
                    }
                }
                Ok(LabelRule::Lookup {
                    map: to_map(pairs),
                    strip_dot,
                })
            }
            FormatSpec::UnswNb15 => match task {
                Task::Binary => Ok(LabelRule::Flag {
                    normal_idx: index(BINARY_CLASSES[0])?,
                    attack_idx: index(BINARY_CLASSES[1])?,
                }),
                Task::Multiclass | Task::AttackName => {
                    let mut pairs: Vec<(String, Option<u32>)> = UNSW_CLASSES
                        .iter()
                        .map(|c| (c.to_string(), class_of(c)))
                        .collect();
                    // The full UNSW-NB15 release spells this category with an 's'.
                    pairs.push(("Backdoors".to_string(), class_of("Backdoor")));
                    Ok(LabelRule::Lookup {
                        map: to_map(pairs),
                        strip_dot: false,
                    })
                }
            },
            FormatSpec::Csv(_) | FormatSpec::ZeekConn => {
                let benign: NameSet = match format {
                    FormatSpec::Csv(csv) => csv.benign.iter().cloned().collect(),
                    _ => crate::ZEEK_CONN_BENIGN
                        .iter()
                        .map(|s| s.to_string())
                        .collect(),
                };
                match (task, classes) {
                    (Task::Binary, _) => Ok(LabelRule::Benign {
                        benign,
                        benign_idx: index(BINARY_CLASSES[0])?,
                        attack_idx: index(BINARY_CLASSES[1])?,
                    }),
                    (Task::Multiclass | Task::AttackName, None) => {
                        Ok(LabelRule::BenignOpen { benign })
                    }
                    (Task::Multiclass | Task::AttackName, Some(classes)) => {
                        if classes.is_empty() {
                            return Err("the class list is empty".to_string());
                        }
                        let map = classes
                            .iter()
                            .enumerate()
                            .skip(1)
                            .map(|(i, c)| (c.clone(), i as u32))
                            .collect();
                        Ok(LabelRule::BenignOrLookup { benign, map })
                    }
                }
            }
        }
    }

    /// The class of one trimmed label cell.
    pub(crate) fn resolve<'a>(&self, cell: &'a str) -> LabelOutcome<'a> {
        let known =
            |hit: Option<&u32>| hit.map_or(LabelOutcome::Unmapped, |&c| LabelOutcome::Class(c));
        match self {
            LabelRule::Lookup { map, strip_dot } => {
                let name = if *strip_dot {
                    cell.strip_suffix('.').unwrap_or(cell)
                } else {
                    cell
                };
                known(map.get(name))
            }
            LabelRule::KddOpen { strip_dot } => {
                let name = if *strip_dot {
                    cell.strip_suffix('.').unwrap_or(cell)
                } else {
                    cell
                };
                if name == "normal" {
                    LabelOutcome::Class(0)
                } else if kdd_category(name).is_some() {
                    LabelOutcome::Learned(name)
                } else {
                    LabelOutcome::Unmapped
                }
            }
            LabelRule::Flag {
                normal_idx,
                attack_idx,
            } => match cell {
                "0" => LabelOutcome::Class(*normal_idx),
                "1" => LabelOutcome::Class(*attack_idx),
                _ => LabelOutcome::Invalid("0 or 1"),
            },
            LabelRule::Benign {
                benign,
                benign_idx,
                attack_idx,
            } => LabelOutcome::Class(if benign.contains(cell) {
                *benign_idx
            } else {
                *attack_idx
            }),
            LabelRule::BenignOrLookup { benign, map } => {
                if benign.contains(cell) {
                    LabelOutcome::Class(0)
                } else {
                    known(map.get(cell))
                }
            }
            LabelRule::BenignOpen { benign } => {
                if benign.contains(cell) {
                    LabelOutcome::Class(0)
                } else {
                    LabelOutcome::Learned(cell)
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::CsvSchema;

    fn classes(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    fn check(format: &FormatSpec, task: Task, cells: &[(&str, LabelOutcome<'_>)]) {
        let fixed = fixed_classes(format, task);
        let rule = LabelRule::new(format, task, fixed.as_deref()).unwrap();
        for (cell, want) in cells {
            assert_eq!(rule.resolve(cell), *want, "{cell}");
        }
    }

    #[test]
    fn every_listed_attack_has_a_category() {
        let n: usize = KDD_ATTACKS.iter().map(|(_, names)| names.len()).sum();
        assert_eq!(n, 39);
        assert_eq!(kdd_category("normal"), Some("normal"));
        assert_eq!(kdd_category("mscan"), Some("Probe"));
        assert_eq!(kdd_category("httptunnel"), Some("R2L"));
        assert_eq!(kdd_category("ps"), Some("U2R"));
        assert_eq!(kdd_category("apache2"), Some("DoS"));
        assert_eq!(kdd_category("smurf."), None);
        assert_eq!(kdd_category("zeroday"), None);
    }

    #[test]
    fn kdd_labels() {
        use LabelOutcome::*;
        check(
            &FormatSpec::NslKdd,
            Task::Binary,
            &[
                ("normal", Class(0)),
                ("neptune", Class(1)),
                ("xterm", Class(1)),
                ("nope", Unmapped),
                ("smurf.", Unmapped),
            ],
        );
        check(
            &FormatSpec::NslKdd,
            Task::Multiclass,
            &[
                ("normal", Class(0)),
                ("neptune", Class(1)),
                ("saint", Class(2)),
                ("named", Class(3)),
                ("sqlattack", Class(4)),
            ],
        );
        check(
            &FormatSpec::Kdd99,
            Task::Multiclass,
            &[
                ("normal.", Class(0)),
                ("smurf.", Class(1)),
                ("smurf", Class(1)),
                ("smurf..", Unmapped),
            ],
        );
    }

    #[test]
    fn kdd_attack_name_labels() {
        use LabelOutcome::*;
        check(
            &FormatSpec::Kdd99,
            Task::AttackName,
            &[
                ("normal.", Class(0)),
                ("normal", Class(0)),
                ("smurf.", Learned("smurf")),
                ("neptune", Learned("neptune")),
                ("zeroday.", Unmapped),
            ],
        );
        let known = classes(&["normal", "neptune", "smurf"]);
        let rule = LabelRule::new(&FormatSpec::Kdd99, Task::AttackName, Some(&known)).unwrap();
        assert_eq!(rule.resolve("smurf."), Class(2));
        assert_eq!(rule.resolve("normal."), Class(0));
        assert_eq!(rule.resolve("satan."), Unmapped);
    }

    #[test]
    fn unsw_labels() {
        use LabelOutcome::*;
        check(
            &FormatSpec::UnswNb15,
            Task::Binary,
            &[
                ("0", Class(0)),
                ("1", Class(1)),
                ("2", Invalid("0 or 1")),
                ("", Invalid("0 or 1")),
            ],
        );
        check(
            &FormatSpec::UnswNb15,
            Task::Multiclass,
            &[
                ("Normal", Class(0)),
                ("Worms", Class(9)),
                ("Backdoors", Class(2)),
                ("normal", Unmapped),
            ],
        );
    }

    #[test]
    fn csv_labels() {
        use LabelOutcome::*;
        let csv = FormatSpec::Csv(CsvSchema {
            label: "Label".into(),
            benign: vec!["BENIGN".into(), "Benign".into()],
            categorical: vec![],
            ignore: vec![],
            non_finite: Default::default(),
        });
        check(
            &csv,
            Task::Binary,
            &[
                ("BENIGN", Class(0)),
                ("Benign", Class(0)),
                ("DDoS", Class(1)),
            ],
        );
        check(
            &csv,
            Task::Multiclass,
            &[("Benign", Class(0)), ("DDoS", Learned("DDoS"))],
        );
        let known = classes(&["BENIGN", "DDoS", "PortScan"]);
        let rule = LabelRule::new(&csv, Task::Multiclass, Some(&known)).unwrap();
        assert_eq!(rule.resolve("Benign"), Class(0));
        assert_eq!(rule.resolve("PortScan"), Class(2));
        assert_eq!(rule.resolve("Bot"), Unmapped);
        let err = LabelRule::new(&csv, Task::Binary, Some(&known)).unwrap_err();
        assert_eq!(err, "the classes lack 'normal'");
    }
}
