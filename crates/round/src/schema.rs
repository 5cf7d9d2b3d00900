//! Schema agreement: the federation schema is the union of the sites' proposals.
//!
//! Trees are interchangeable only between models with equal schemas, and categorical codes are
//! indices into sorted dictionaries, so every site must encode its flows with the same
//! dictionaries. Each site proposes the schema it learned from its own flows; the coordinator
//! merges the proposals: same format, task and feature names and kinds, categorical dictionaries
//! unioned (sorted), classes unioned with the benign class first. Pure and deterministic: the
//! result does not depend on the order of the proposals.

use std::collections::BTreeSet;

use fedids_data::{FeatureKind, Schema};

/// Merges the sites' schema proposals (`(site, schema)` pairs) into the federation schema. An
/// error names the first site whose proposal cannot be merged and why.
pub fn agree(proposals: &[(String, Schema)]) -> Result<Schema, String> {
    let mut sorted: Vec<&(String, Schema)> = proposals.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    let Some(((first_site, first), rest)) = sorted.split_first().map(|(f, r)| ((&f.0, &f.1), r))
    else {
        return Err("no schema proposals".to_string());
    };
    let mut out = first.clone();
    for (site, schema) in rest {
        merge_into(&mut out, schema).map_err(|e| {
            format!("site '{site}' does not fit the schema of site '{first_site}': {e}")
        })?;
    }
    Ok(out)
}

/// Checks that a site's proposal fits an agreed schema (same format, task, features and benign
/// class); values it has that the schema lacks encode as unknown.
pub fn fits(agreed: &Schema, proposal: &Schema) -> Result<(), String> {
    let mut probe = agreed.clone();
    merge_into(&mut probe, proposal)
}

fn merge_into(out: &mut Schema, other: &Schema) -> Result<(), String> {
    if out.format != other.format {
        return Err(format!(
            "format {} against {} (or a different CSV schema)",
            other.format.name(),
            out.format.name()
        ));
    }
    if out.task != other.task {
        return Err(format!(
            "task {} against {}",
            other.task.name(),
            out.task.name()
        ));
    }
    if out.features.len() != other.features.len() {
        return Err(format!(
            "{} features against {}",
            other.features.len(),
            out.features.len()
        ));
    }
    for (mine, theirs) in out.features.iter_mut().zip(&other.features) {
        if mine.name != theirs.name {
            return Err(format!(
                "feature '{}' where '{}' was expected",
                theirs.name, mine.name
            ));
        }
        match (&mut mine.kind, &theirs.kind) {
            (FeatureKind::Numeric, FeatureKind::Numeric) => {}
            (
                FeatureKind::Categorical { categories },
                FeatureKind::Categorical { categories: t },
            ) => {
                let union: BTreeSet<String> = categories.iter().chain(t).cloned().collect();
                *categories = union.into_iter().collect();
            }
            _ => {
                return Err(format!(
                    "feature '{}' is numeric at one site and categorical at another",
                    mine.name
                ))
            }
        }
    }
    if out.classes.first() != other.classes.first() {
        return Err(format!(
            "benign class '{}' against '{}'",
            other.classes.first().map_or("", String::as_str),
            out.classes.first().map_or("", String::as_str)
        ));
    }
    if out.classes != other.classes {
        let rest: BTreeSet<String> = out.classes[1..]
            .iter()
            .chain(other.classes.iter().skip(1))
            .cloned()
            .collect();
        out.classes.truncate(1);
        out.classes.extend(rest);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use fedids_data::{Feature, FormatSpec, Task};
    use proptest::prelude::*;

    fn schema(cats: &[&str], classes: &[&str]) -> Schema {
        Schema {
            format: FormatSpec::NslKdd,
            task: Task::Multiclass,
            features: vec![
                Feature {
                    name: "duration".into(),
                    kind: FeatureKind::Numeric,
                },
                Feature {
                    name: "service".into(),
                    kind: FeatureKind::Categorical {
                        categories: cats.iter().map(|s| s.to_string()).collect(),
                    },
                },
            ],
            classes: classes.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn dictionaries_and_classes_are_unioned() {
        let a = (
            "a".to_string(),
            schema(&["ftp", "http"], &["normal", "DoS"]),
        );
        let b = (
            "b".to_string(),
            schema(&["smtp", "http"], &["normal", "Probe"]),
        );
        let agreed = agree(&[a, b]).unwrap();
        assert_eq!(
            agreed,
            schema(&["ftp", "http", "smtp"], &["normal", "DoS", "Probe"])
        );
    }

    #[test]
    fn conflicts_name_the_site() {
        let a = ("a".to_string(), schema(&["x"], &["normal"]));
        let mut other = schema(&["x"], &["normal"]);
        other.features[0].name = "dur".into();
        let err = agree(&[a.clone(), ("b".to_string(), other)]).unwrap_err();
        assert_eq!(
            err,
            "site 'b' does not fit the schema of site 'a': feature 'dur' where 'duration' was expected"
        );
        let mut binary = schema(&["x"], &["normal"]);
        binary.task = Task::Binary;
        let err = agree(&[a.clone(), ("c".to_string(), binary)]).unwrap_err();
        assert!(err.contains("task binary against multiclass"), "{err}");
        let benign = schema(&["x"], &["benign"]);
        let err = agree(&[a, ("d".to_string(), benign)]).unwrap_err();
        assert!(
            err.contains("benign class 'benign' against 'normal'"),
            "{err}"
        );
        assert!(agree(&[]).is_err());
    }

    proptest! {
        #[test]
        fn agreement_ignores_order_and_covers_every_value(
            sets in proptest::collection::vec(proptest::collection::btree_set("[a-e]{1,2}", 0..5), 1..5)
        ) {
            let proposals: Vec<(String, Schema)> = sets
                .iter()
                .enumerate()
                .map(|(i, set)| {
                    let cats: Vec<&str> = set.iter().map(String::as_str).collect();
                    (format!("s{i}"), schema(&cats, &["normal"]))
                })
                .collect();
            let agreed = agree(&proposals).unwrap();
            let mut reversed = proposals.clone();
            reversed.reverse();
            prop_assert_eq!(&agree(&reversed).unwrap(), &agreed);
            let FeatureKind::Categorical { categories } = &agreed.features[1].kind else {
                panic!("categorical")
            };
            prop_assert!(categories.windows(2).all(|w| w[0] < w[1]));
            for set in &sets {
                for v in set {
                    prop_assert!(categories.contains(v));
                }
            }
            for (_, p) in &proposals {
                prop_assert!(fits(&agreed, p).is_ok());
            }
        }
    }
}
