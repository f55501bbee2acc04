//! Subject syntax (NATS's: dot-separated tokens, `*` one token, `>` the rest) and the names of Navarch's subjects.

use crate::error::{Error, Result};

/// Checks a subject used to publish: non-empty tokens, no whitespace, no wildcards.
pub fn validate_publish(subject: &str) -> Result<()> {
    validate(subject, false)
}

/// Checks a subject used to subscribe: like [`validate_publish`] but `*` may stand for a token and `>` may end it.
pub fn validate_subscribe(subject: &str) -> Result<()> {
    validate(subject, true)
}

fn validate(subject: &str, wildcards: bool) -> Result<()> {
    let bad = || Error::InvalidSubject(subject.to_string());
    if subject.is_empty() {
        return Err(bad());
    }
    let tokens: Vec<&str> = subject.split('.').collect();
    for (i, token) in tokens.iter().enumerate() {
        if token.is_empty() || token.chars().any(|c| c.is_whitespace()) {
            return Err(bad());
        }
        let is_wild = *token == "*" || *token == ">";
        if is_wild && !wildcards {
            return Err(bad());
        }
        if *token == ">" && i != tokens.len() - 1 {
            return Err(bad());
        }
        if !is_wild && (token.contains('*') || token.contains('>')) && wildcards {
            return Err(bad());
        }
    }
    Ok(())
}

/// Whether `subject` (a concrete subject) matches `pattern` (which may hold wildcards).
pub fn matches(pattern: &str, subject: &str) -> bool {
    let mut pat = pattern.split('.');
    let mut sub = subject.split('.');
    loop {
        match (pat.next(), sub.next()) {
            (Some(">"), Some(_)) => return true,
            (Some("*"), Some(_)) => continue,
            (Some(p), Some(s)) if p == s => continue,
            (None, None) => return true,
            _ => return false,
        }
    }
}

/// Turns an arbitrary string into one subject token: dots, wildcards and whitespace become `_`.
pub fn token(raw: &str) -> String {
    if raw.is_empty() {
        return "_".into();
    }
    raw.chars()
        .map(|c| match c {
            '.' | '*' | '>' => '_',
            c if c.is_whitespace() => '_',
            c => c,
        })
        .collect()
}

/// The names of Navarch's subjects for one cluster. Every subject starts with `navarch.<cluster>.` so several
/// clusters can share one NATS.
#[derive(Debug, Clone)]
pub struct Subjects {
    prefix: String,
}

impl Subjects {
    /// Subjects of the cluster named `cluster`.
    pub fn new(cluster: &str) -> Self {
        Self {
            prefix: format!("navarch.{}", token(cluster)),
        }
    }

    /// `navarch.<cluster>`.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Requests to the store (range, txn, history, status); served by the store members in one queue group.
    pub fn store_rpc(&self) -> String {
        format!("{}.store.rpc", self.prefix)
    }

    /// Committed changes of the store, one message per revision per stream, and periodic progress:
    /// `store.events.<stream>`.
    pub fn store_events(&self, stream: &str) -> String {
        format!("{}.store.events.{}", self.prefix, token(stream))
    }

    /// Every stream of committed changes.
    pub fn store_events_all(&self) -> String {
        format!("{}.store.events.>", self.prefix)
    }

    /// Raft RPCs addressed to store member `id` (append entries, vote, snapshot chunks).
    pub fn raft(&self, id: u64) -> String {
        format!("{}.store.raft.{}", self.prefix, id)
    }

    /// The public event stream: every committed change of one API object, as a JSON watch event:
    /// `events.<resource>.<namespace>.<name>` (`_` as the namespace of cluster-scoped objects; dots and wildcards
    /// in names become `_`). See `docs/events.md`.
    pub fn object_events(&self, resource: &str, namespace: Option<&str>, name: &str) -> String {
        format!(
            "{}.events.{}.{}.{}",
            self.prefix,
            token(resource),
            namespace.map_or_else(|| "_".to_string(), token),
            token(name)
        )
    }

    /// Requests to the node agent of `node` (logs, exec in later issues).
    pub fn agent(&self, node: &str) -> String {
        format!("{}.agent.{}", self.prefix, token(node))
    }

    /// Usage requests to the node agent of `node` (`bus/src/metrics.rs`): `agent.<node>.metrics`.
    pub fn agent_metrics(&self, node: &str) -> String {
        format!("{}.agent.{}.metrics", self.prefix, token(node))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_match_like_nats() {
        assert!(matches("a.*.c", "a.b.c"));
        assert!(!matches("a.*.c", "a.b.c.d"));
        assert!(!matches("a.*", "a"));
        assert!(matches("a.>", "a.b"));
        assert!(matches("a.>", "a.b.c.d"));
        assert!(!matches("a.>", "a"));
        assert!(matches(">", "a"));
        assert!(matches("a.b", "a.b"));
        assert!(!matches("a.b", "a.bb"));
        assert!(!matches("a.b.c", "a.b"));
    }

    #[test]
    fn validation_rejects_malformed_subjects() {
        for bad in ["", ".a", "a.", "a..b", "a b", "a.>.b", "a*"] {
            assert!(validate_subscribe(bad).is_err(), "{bad:?} accepted");
        }
        for bad in ["a.*", "a.>", "*"] {
            assert!(
                validate_publish(bad).is_err(),
                "{bad:?} accepted for publish"
            );
            assert!(validate_subscribe(bad).is_ok());
        }
        assert!(validate_publish("navarch.c.store.rpc").is_ok());
    }

    #[test]
    fn tokens_never_split_subjects() {
        assert_eq!(token("node.a b*>"), "node_a_b__");
        assert_eq!(token(""), "_");
        let s = Subjects::new("prod.eu");
        assert_eq!(s.store_rpc(), "navarch.prod_eu.store.rpc");
        assert_eq!(s.store_events("pods"), "navarch.prod_eu.store.events.pods");
    }
}
