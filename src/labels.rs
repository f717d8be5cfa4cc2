//! Run labels: what was changed for a run (`netem_ms=40`, `client=v1.4.2`), as
//! key–value pairs. The type, its rules, the `k=v` syntax of the command line and
//! of `label=` filters, and what a filter matches.

use crate::error::Error;
use std::collections::BTreeMap;

/// A run's labels, by key (so they list in key order).
pub type Labels = BTreeMap<String, String>;

/// Labels a run may have at most.
pub const MAX_LABELS: usize = 32;
/// Characters a key may have at most.
pub const MAX_KEY_CHARS: usize = 64;
/// Bytes a value may have at most.
pub const MAX_VALUE_BYTES: usize = 256;

/// Checks every rule: at most [`MAX_LABELS`]; keys of 1 to [`MAX_KEY_CHARS`] of
/// `a-z 0-9 _ . -`; values of at most [`MAX_VALUE_BYTES`] bytes with no control
/// characters. The error names the label and the rule.
pub fn check(labels: &Labels) -> Result<(), Error> {
    if labels.len() > MAX_LABELS {
        return Err(Error::BadRequest(format!(
            "labels: at most {MAX_LABELS} a run (got {})",
            labels.len()
        )));
    }
    for (key, value) in labels {
        check_key(key)?;
        if value.len() > MAX_VALUE_BYTES {
            return Err(Error::BadRequest(format!(
                "labels.{key}: a value is at most {MAX_VALUE_BYTES} bytes (got {})",
                value.len()
            )));
        }
        if value.chars().any(char::is_control) {
            return Err(Error::BadRequest(format!(
                "labels.{key}: a value must not contain control characters"
            )));
        }
    }
    Ok(())
}

/// Checks a key's rule: 1 to [`MAX_KEY_CHARS`] characters of `a-z 0-9 _ . -`.
pub fn check_key(key: &str) -> Result<(), Error> {
    let allowed = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || "_.-".contains(c);
    if key.is_empty() || key.len() > MAX_KEY_CHARS || !key.chars().all(allowed) {
        return Err(Error::BadRequest(format!(
            "labels: key {key:?} must be 1 to {MAX_KEY_CHARS} characters of a-z 0-9 _ . -"
        )));
    }
    Ok(())
}

/// Reads `key=value` (split at the first `=`; the value may be empty).
pub fn parse_pair(text: &str) -> Result<(String, String), Error> {
    let (key, value) = text
        .split_once('=')
        .ok_or_else(|| Error::BadRequest(format!("label: expected key=value, got {text:?}")))?;
    check_key(key)?;
    Ok((key.to_string(), value.to_string()))
}

/// Reads a list of `key=value`s into labels and checks them; a key given twice is
/// refused (which one was meant?).
pub fn parse_all<'a>(pairs: impl IntoIterator<Item = &'a str>) -> Result<Labels, Error> {
    let mut labels = Labels::new();
    for pair in pairs {
        let (key, value) = parse_pair(pair)?;
        if labels.insert(key.clone(), value).is_some() {
            return Err(Error::BadRequest(format!("label: {key:?} is given twice")));
        }
    }
    check(&labels)?;
    Ok(labels)
}

/// What `label=` filters ask of a run's labels: each `key=value` must be there,
/// and each bare `key` must be there with any value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    wanted: Vec<(String, Option<String>)>,
}

impl Filter {
    /// The filter of `label=` parameters, each `key=value` or `key`.
    pub fn parse<'a>(filters: impl IntoIterator<Item = &'a str>) -> Result<Filter, Error> {
        let wanted = filters
            .into_iter()
            .map(|text| match text.split_once('=') {
                Some(_) => parse_pair(text).map(|(key, value)| (key, Some(value))),
                None => check_key(text).map(|()| (text.to_string(), None)),
            })
            .collect::<Result<_, _>>()?;
        Ok(Filter { wanted })
    }

    /// Whether `labels` has everything asked for.
    pub fn matches(&self, labels: &Labels) -> bool {
        self.wanted
            .iter()
            .all(|(key, value)| match (labels.get(key), value) {
                (Some(have), Some(want)) => have == want,
                (Some(_), None) => true,
                (None, _) => false,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(key, value)| (key.to_string(), value.to_string()))
            .collect()
    }

    #[test]
    fn each_rule_is_named() {
        let refused = |labels: &Labels| check(labels).unwrap_err().to_string();
        assert!(check(&labels(&[("netem_ms", "40"), ("client.v-1", "")])).is_ok());
        assert!(refused(&labels(&[("Netem", "1")])).contains("a-z 0-9 _ . -"));
        assert!(refused(&labels(&[("", "1")])).contains("1 to 64"));
        assert!(refused(&labels(&[(&"k".repeat(65), "1")])).contains("1 to 64"));
        assert!(check(&labels(&[(&"k".repeat(64), "1")])).is_ok());
        let long = "v".repeat(257);
        assert!(refused(&labels(&[("k", &long)])).contains("labels.k: a value is at most 256"));
        assert!(check(&labels(&[("k", &"é".repeat(128))])).is_ok());
        assert!(refused(&labels(&[("k", "a\nb")])).contains("control"));
        let many: Labels = (0..33).map(|i| (format!("k{i}"), String::new())).collect();
        assert!(refused(&many).contains("at most 32"));
    }

    #[test]
    fn pairs_split_at_the_first_equals_sign() {
        assert_eq!(
            parse_pair("query=a=b").unwrap(),
            ("query".into(), "a=b".into())
        );
        assert_eq!(parse_pair("empty=").unwrap(), ("empty".into(), "".into()));
        assert!(parse_pair("novalue").is_err());
        assert!(
            parse_all(["a=1", "a=2"])
                .unwrap_err()
                .to_string()
                .contains("twice")
        );
    }

    #[test]
    fn filters_want_every_pair_and_every_bare_key() {
        let run = labels(&[("netem_ms", "40"), ("client", "v1")]);
        let filter = |texts: &[&str]| Filter::parse(texts.iter().copied()).unwrap();
        assert!(filter(&[]).matches(&run));
        assert!(filter(&["netem_ms=40"]).matches(&run));
        assert!(filter(&["netem_ms", "client=v1"]).matches(&run));
        assert!(!filter(&["netem_ms=4"]).matches(&run));
        assert!(!filter(&["other"]).matches(&run));
        assert!(Filter::parse(["BAD=1"]).is_err());
    }
}
