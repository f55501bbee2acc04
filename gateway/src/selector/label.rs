//! Label selectors in Kubernetes' string syntax: `a=b`, `a==b`, `a!=b`, `a in (x,y)`, `a notin (x)`, `a`, `!a`,
//! `a>1`, `a<1`, comma-separated.

use std::collections::BTreeSet;

use navarch_bus::api::ApiError;
use serde_json::Value;

/// One requirement on one label.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Requirement {
    Exists(String),
    DoesNotExist(String),
    Equals(String, String),
    NotEquals(String, String),
    In(String, BTreeSet<String>),
    NotIn(String, BTreeSet<String>),
    GreaterThan(String, i64),
    LessThan(String, i64),
}

/// A parsed label selector: every requirement must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSelector(Vec<Requirement>);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Word(String),
    Not,
    Eq,
    DoubleEq,
    NotEq,
    Gt,
    Lt,
    Open,
    Close,
    Comma,
}

fn lex(raw: &str) -> Vec<Token> {
    let mut tokens = Vec::new();
    let mut chars = raw.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {}
            ',' => tokens.push(Token::Comma),
            '(' => tokens.push(Token::Open),
            ')' => tokens.push(Token::Close),
            '>' => tokens.push(Token::Gt),
            '<' => tokens.push(Token::Lt),
            '=' if chars.peek() == Some(&'=') => {
                chars.next();
                tokens.push(Token::DoubleEq);
            }
            '=' => tokens.push(Token::Eq),
            '!' if chars.peek() == Some(&'=') => {
                chars.next();
                tokens.push(Token::NotEq);
            }
            '!' => tokens.push(Token::Not),
            c => {
                let mut word = String::from(c);
                while let Some(&n) = chars.peek() {
                    if n.is_whitespace() || ",()<>=!".contains(n) {
                        break;
                    }
                    word.push(n);
                    chars.next();
                }
                tokens.push(Token::Word(word));
            }
        }
    }
    tokens
}

fn bad(raw: &str, why: &str) -> ApiError {
    ApiError::bad_request(format!(
        "unable to parse requirement: invalid label selector {raw:?}: {why}"
    ))
}

/// A label key: an optional DNS-subdomain prefix and `/`, then a name of at most 63 characters.
fn check_key(raw: &str, key: &str) -> Result<(), ApiError> {
    let (prefix, name) = match key.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    let name_ok = !name.is_empty() && name.len() <= 63 && value_chars_ok(name);
    let prefix_ok = prefix.is_none_or(|p| {
        !p.is_empty()
            && p.len() <= 253
            && p.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
    });
    if name_ok && prefix_ok {
        Ok(())
    } else {
        Err(bad(raw, &format!("key {key:?} is not a valid label key")))
    }
}

fn value_chars_ok(v: &str) -> bool {
    let b = v.as_bytes();
    b.iter()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
        && b.first().is_some_and(u8::is_ascii_alphanumeric)
        && b.last().is_some_and(u8::is_ascii_alphanumeric)
}

fn check_value(raw: &str, value: &str) -> Result<(), ApiError> {
    if value.is_empty() || (value.len() <= 63 && value_chars_ok(value)) {
        Ok(())
    } else {
        Err(bad(
            raw,
            &format!("value {value:?} is not a valid label value"),
        ))
    }
}

impl LabelSelector {
    /// Parses a selector; the empty string selects everything.
    pub fn parse(raw: &str) -> Result<Self, ApiError> {
        let tokens = lex(raw);
        let mut requirements = Vec::new();
        let mut i = 0;
        let word = |i: usize| match tokens.get(i) {
            Some(Token::Word(w)) => Some(w.clone()),
            _ => None,
        };
        while i < tokens.len() {
            let requirement = if tokens[i] == Token::Not {
                let key = word(i + 1).ok_or_else(|| bad(raw, "expected a key after '!'"))?;
                check_key(raw, &key)?;
                i += 2;
                Requirement::DoesNotExist(key)
            } else {
                let key = word(i).ok_or_else(|| bad(raw, "expected a key"))?;
                check_key(raw, &key)?;
                i += 1;
                match tokens.get(i) {
                    None | Some(Token::Comma) => Requirement::Exists(key),
                    Some(op @ (Token::Eq | Token::DoubleEq | Token::NotEq)) => {
                        let value = match tokens.get(i + 1) {
                            Some(Token::Word(w)) => {
                                i += 2;
                                w.clone()
                            }
                            None | Some(Token::Comma) => {
                                i += 1;
                                String::new()
                            }
                            Some(_) => return Err(bad(raw, "expected a value")),
                        };
                        check_value(raw, &value)?;
                        if *op == Token::NotEq {
                            Requirement::NotEquals(key, value)
                        } else {
                            Requirement::Equals(key, value)
                        }
                    }
                    Some(op @ (Token::Gt | Token::Lt)) => {
                        let n: i64 = word(i + 1)
                            .and_then(|w| w.parse().ok())
                            .ok_or_else(|| bad(raw, "expected an integer after '>' or '<'"))?;
                        i += 2;
                        if *op == Token::Gt {
                            Requirement::GreaterThan(key, n)
                        } else {
                            Requirement::LessThan(key, n)
                        }
                    }
                    Some(Token::Word(w)) if w == "in" || w == "notin" => {
                        let negate = w == "notin";
                        if tokens.get(i + 1) != Some(&Token::Open) {
                            return Err(bad(raw, "expected '(' after in/notin"));
                        }
                        i += 2;
                        let mut values = BTreeSet::new();
                        loop {
                            match tokens.get(i) {
                                Some(Token::Word(v)) => {
                                    check_value(raw, v)?;
                                    values.insert(v.clone());
                                    i += 1;
                                }
                                Some(Token::Comma) => i += 1,
                                Some(Token::Close) => {
                                    i += 1;
                                    break;
                                }
                                _ => return Err(bad(raw, "expected ')' to close the set")),
                            }
                        }
                        if values.is_empty() {
                            return Err(bad(raw, "a set needs at least one value"));
                        }
                        if negate {
                            Requirement::NotIn(key, values)
                        } else {
                            Requirement::In(key, values)
                        }
                    }
                    Some(_) => return Err(bad(raw, "expected an operator")),
                }
            };
            requirements.push(requirement);
            match tokens.get(i) {
                None => {}
                Some(Token::Comma) if i + 1 < tokens.len() => i += 1,
                Some(_) => return Err(bad(raw, "expected ',' between requirements")),
            }
        }
        Ok(Self(requirements))
    }

    /// Whether the selector selects everything.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `object`'s `metadata.labels` satisfy every requirement.
    pub fn matches(&self, object: &Value) -> bool {
        let labels = object["metadata"]["labels"].as_object();
        let get = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
        self.0.iter().all(|r| match r {
            Requirement::Exists(k) => get(k).is_some(),
            Requirement::DoesNotExist(k) => get(k).is_none(),
            Requirement::Equals(k, v) => get(k) == Some(v.as_str()),
            Requirement::NotEquals(k, v) => get(k) != Some(v.as_str()),
            Requirement::In(k, set) => get(k).is_some_and(|v| set.contains(v)),
            Requirement::NotIn(k, set) => get(k).is_none_or(|v| !set.contains(v)),
            Requirement::GreaterThan(k, n) => get(k)
                .and_then(|v| v.parse::<i64>().ok())
                .is_some_and(|v| v > *n),
            Requirement::LessThan(k, n) => get(k)
                .and_then(|v| v.parse::<i64>().ok())
                .is_some_and(|v| v < *n),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn object(labels: Value) -> Value {
        json!({"metadata": {"name": "x", "labels": labels}})
    }

    fn selects(selector: &str, labels: Value) -> bool {
        LabelSelector::parse(selector)
            .unwrap()
            .matches(&object(labels))
    }

    #[test]
    fn every_operator_matches_like_kubernetes() {
        let web = json!({"app": "web", "tier": "front", "rank": "3"});
        assert!(selects("", web.clone()));
        assert!(selects("app=web", web.clone()));
        assert!(selects("app==web", web.clone()));
        assert!(!selects("app=db", web.clone()));
        assert!(selects("app!=db", web.clone()));
        assert!(
            selects("missing!=x", web.clone()),
            "!= matches an absent label"
        );
        assert!(selects("tier in (front, back)", web.clone()));
        assert!(!selects("tier in (back)", web.clone()));
        assert!(selects("tier notin (back)", web.clone()));
        assert!(selects("missing notin (x)", web.clone()));
        assert!(!selects("missing in (x)", web.clone()));
        assert!(selects("app", web.clone()));
        assert!(!selects("!app", web.clone()));
        assert!(selects("!missing", web.clone()));
        assert!(selects("rank>2,rank<4", web.clone()));
        assert!(!selects("rank>3", web.clone()));
        assert!(selects("app=web, tier in (front),!missing", web.clone()));
        assert!(!selects("app=web,tier=back", web.clone()));
        assert!(selects("app.kubernetes.io/name!=x", web.clone()));
        assert!(!selects("app", json!(null)));
        assert!(selects("app=", json!({"app": ""})));
    }

    #[test]
    fn malformed_selectors_are_bad_requests() {
        for raw in [
            "app=web,",
            "=web",
            "app in web",
            "app in (a",
            "app in ()",
            "app web",
            "app>x",
            "Bad Key=1",
            "app=has space",
            "app=-x",
            "!",
            "a/b/c=1",
        ] {
            let e = LabelSelector::parse(raw);
            assert!(e.is_err(), "{raw:?} parsed as {e:?}");
            assert_eq!(e.unwrap_err().code(), 400);
        }
    }
}
