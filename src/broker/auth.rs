//! Authentication (users given in Python) and topic ACLs with mosquitto `acl_file`
//! semantics.

use std::collections::HashMap;

use crate::codec::topic;

/// Outcome of checking CONNECT credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credentials {
    Accepted,
    /// v3 return code 4, v5 0x86.
    BadUserNameOrPassword,
    /// v3 return code 5, v5 0x87.
    NotAuthorized,
}

#[derive(Debug, Clone, Default)]
pub struct Users {
    pub allow_anonymous: bool,
    /// username -> password (plain, given in Python) or a mosquitto_passwd hash.
    pub entries: HashMap<String, Secret>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Secret {
    Plain(String),
    /// `$7$iterations$salt$hash` (PBKDF2-SHA512) or `$6$salt$hash` (SHA512).
    Hashed(String),
}

impl Users {
    pub fn check(&self, username: Option<&str>, password: Option<&[u8]>) -> Credentials {
        match username {
            None => {
                if self.allow_anonymous {
                    Credentials::Accepted
                } else {
                    Credentials::NotAuthorized
                }
            }
            Some(user) => match self.entries.get(user) {
                Some(secret) => {
                    if password.is_some_and(|p| verify(secret, p)) {
                        Credentials::Accepted
                    } else {
                        Credentials::BadUserNameOrPassword
                    }
                }
                // No user list at all: like mosquitto with allow_anonymous and no
                // password file, a username is only a label.
                None if self.entries.is_empty() && self.allow_anonymous => Credentials::Accepted,
                None => Credentials::BadUserNameOrPassword,
            },
        }
    }
}

fn verify(secret: &Secret, password: &[u8]) -> bool {
    match secret {
        Secret::Plain(p) => constant_time_eq(p.as_bytes(), password),
        Secret::Hashed(h) => super::passwd::verify(h, password),
    }
}

pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Whether a client may publish to `topic` as far as the broker's own topics go: never
/// to `$SYS` (the broker's statistics, retained by it), except the
/// `$SYS/broker/connection/<id>/state` topics that bridges publish about themselves.
/// mosquitto applies the same rule before any ACL (`security.c`, `acl__check_dollar`),
/// matching the prefix `$SYS` without a separator, as here.
pub fn client_may_publish(topic: &str) -> bool {
    !topic.starts_with("$SYS") || topic::matches("$SYS/broker/connection/+/state", topic)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Subscribe and receive.
    Read,
    /// Publish.
    Write,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Grant {
    Read,
    Write,
    ReadWrite,
    Deny,
}

impl Grant {
    fn allows(self, access: Access) -> bool {
        matches!(
            (self, access),
            (Grant::ReadWrite, _) | (Grant::Read, Access::Read) | (Grant::Write, Access::Write)
        )
    }
}

#[derive(Debug, Clone)]
struct Rule {
    grant: Grant,
    filter: String,
}

/// Rules of a mosquitto `acl_file`: `topic` lines before any `user` line apply to
/// anonymous clients, `topic` lines after `user NAME` to that user, `pattern` lines to
/// everyone with `%c` (client id) and `%u` (username) substituted. A `deny` rule that
/// matches wins; otherwise access needs a matching rule that grants it.
#[derive(Debug, Clone, Default)]
pub struct Acl {
    anonymous: Vec<Rule>,
    users: HashMap<String, Vec<Rule>>,
    patterns: Vec<Rule>,
}

impl Acl {
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut acl = Acl::default();
        let mut current_user: Option<String> = None;
        for (n, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (keyword, rest) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
            let rest = rest.trim();
            match keyword {
                "user" => {
                    if rest.is_empty() {
                        return Err(format!("line {}: user needs a name", n + 1));
                    }
                    current_user = Some(rest.to_string());
                }
                "topic" | "pattern" => {
                    let (grant, filter) = parse_rule(rest)
                        .ok_or_else(|| format!("line {}: expected a topic", n + 1))?;
                    let rule = Rule {
                        grant,
                        filter: filter.to_string(),
                    };
                    if keyword == "pattern" {
                        acl.patterns.push(rule);
                    } else if let Some(u) = &current_user {
                        acl.users.entry(u.clone()).or_default().push(rule);
                    } else {
                        acl.anonymous.push(rule);
                    }
                }
                other => return Err(format!("line {}: unknown keyword {other:?}", n + 1)),
            }
        }
        Ok(acl)
    }

    /// Whether `client_id`/`username` may access `topic` (a topic name for publish and
    /// delivery, a filter for subscribe).
    pub fn allows(
        &self,
        client_id: &str,
        username: Option<&str>,
        topic_or_filter: &str,
        access: Access,
    ) -> bool {
        let own: &[Rule] = match username {
            Some(u) => self.users.get(u).map(Vec::as_slice).unwrap_or(&[]),
            None => &self.anonymous,
        };
        let mut granted = false;
        for rule in own {
            if topic::matches(&rule.filter, topic_or_filter) {
                if rule.grant == Grant::Deny {
                    return false;
                }
                granted |= rule.grant.allows(access);
            }
        }
        // A `+` or `#` in the client id or user name would widen every pattern it is
        // substituted into (`devices/%c/#` for the id `#` covers every device: the
        // CVE-2017-7650 class). Like mosquitto (`security_default.c`), such a client
        // gets no grant from any pattern; deny patterns still hold (a wider denial only
        // denies more).
        let wild = |s: &str| s.contains(['+', '#']);
        let no_pattern_grants = wild(client_id) || username.is_some_and(wild);
        for rule in &self.patterns {
            if no_pattern_grants && rule.grant != Grant::Deny {
                continue;
            }
            let Some(filter) = substitute(&rule.filter, client_id, username) else {
                continue;
            };
            if topic::matches(&filter, topic_or_filter) {
                if rule.grant == Grant::Deny {
                    return false;
                }
                granted |= rule.grant.allows(access);
            }
        }
        granted
    }
}

/// A pattern with `%c` and `%u` replaced; None for a `%u` pattern and a client without
/// a user name (mosquitto skips those rather than substituting an empty level).
fn substitute(pattern: &str, client_id: &str, username: Option<&str>) -> Option<String> {
    if !pattern.contains('%') {
        return Some(pattern.to_string());
    }
    let with_id = pattern.replace("%c", client_id);
    match username {
        Some(u) => Some(with_id.replace("%u", u)),
        None if pattern.contains("%u") => None,
        None => Some(with_id),
    }
}

fn parse_rule(rest: &str) -> Option<(Grant, &str)> {
    let (first, tail) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
    let grant = match first {
        "read" => Some(Grant::Read),
        "write" => Some(Grant::Write),
        "readwrite" => Some(Grant::ReadWrite),
        "deny" => Some(Grant::Deny),
        _ => None,
    };
    match grant {
        Some(g) if !tail.trim().is_empty() => Some((g, tail.trim())),
        Some(_) => None,
        // mosquitto: no access keyword means readwrite.
        None if !rest.is_empty() => Some((Grant::ReadWrite, rest)),
        None => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_and_anonymous() {
        let mut users = Users {
            allow_anonymous: false,
            ..Default::default()
        };
        users
            .entries
            .insert("u".into(), Secret::Plain("secret".into()));
        assert_eq!(users.check(None, None), Credentials::NotAuthorized);
        assert_eq!(
            users.check(Some("u"), Some(b"secret")),
            Credentials::Accepted
        );
        assert_eq!(
            users.check(Some("u"), Some(b"wrong")),
            Credentials::BadUserNameOrPassword
        );
        assert_eq!(
            users.check(Some("x"), Some(b"secret")),
            Credentials::BadUserNameOrPassword
        );
        users.allow_anonymous = true;
        assert_eq!(users.check(None, None), Credentials::Accepted);
    }

    #[test]
    fn acl_file_rules() {
        let acl = Acl::parse(
            "# comment\n\
             topic read public/#\n\
             user alice\n\
             topic readwrite alice/#\n\
             topic deny alice/secret\n\
             topic public/#\n\
             pattern write devices/%c/out\n\
             pattern read users/%u/#\n",
        )
        .unwrap();
        assert!(acl.allows("c", None, "public/x", Access::Read));
        assert!(!acl.allows("c", None, "public/x", Access::Write));
        assert!(acl.allows("c", Some("alice"), "alice/a", Access::Write));
        assert!(!acl.allows("c", Some("alice"), "alice/secret", Access::Read));
        assert!(acl.allows("c", Some("alice"), "public/x", Access::Write));
        assert!(acl.allows("dev1", Some("bob"), "devices/dev1/out", Access::Write));
        assert!(!acl.allows("dev1", Some("bob"), "devices/dev2/out", Access::Write));
        assert!(acl.allows("x", Some("bob"), "users/bob/inbox", Access::Read));
        assert!(!acl.allows("x", Some("bob"), "users/eve/inbox", Access::Read));
        assert!(!acl.allows("x", Some("bob"), "other", Access::Read));
        assert!(Acl::parse("bogus line").is_err());
    }

    #[test]
    fn clients_do_not_publish_to_sys() {
        for t in [
            "$SYS/broker/version",
            "$SYS",
            "$SYSX/a",
            "$SYS/broker/connection/b/x",
        ] {
            assert!(!client_may_publish(t), "{t}");
        }
        for t in [
            "$SYS/broker/connection/b1/state",
            "a/$SYS",
            "$share-ish/x",
            "sys/x",
        ] {
            assert!(client_may_publish(t), "{t}");
        }
    }

    #[test]
    fn wildcard_ids_and_user_names_get_no_pattern_grants() {
        let acl = Acl::parse(
            "pattern readwrite devices/%c/#\n\
             pattern read homes/%u/#\n\
             pattern read public/#\n\
             pattern deny devices/%c/secret\n\
             user mallory\n\
             topic readwrite mallory/#\n",
        )
        .unwrap();
        for id in ["#", "+", "a+", "b#c"] {
            for topic in ["devices/d1/x", "devices/#", "devices/+/x", "public/x"] {
                for access in [Access::Read, Access::Write] {
                    assert!(!acl.allows(id, None, topic, access), "{id} {topic}");
                }
            }
        }
        for user in ["#", "+", "al+ce"] {
            assert!(!acl.allows("c", Some(user), "homes/alice/door", Access::Read));
            assert!(!acl.allows("c", Some(user), "homes/#", Access::Read));
        }
        // A wildcard id keeps its user's named rules, and deny patterns still apply.
        assert!(acl.allows("#", Some("mallory"), "mallory/x", Access::Write));
        assert!(!acl.allows("#", Some("mallory"), "devices/d1/x", Access::Write));
        // Literal ids and names keep their own subtree, and only it.
        assert!(acl.allows("d1", None, "devices/d1/x", Access::Write));
        assert!(!acl.allows("d1", None, "devices/d2/x", Access::Write));
        assert!(!acl.allows("d1", None, "devices/d1/secret", Access::Read));
        assert!(acl.allows("c", Some("alice"), "homes/alice/door", Access::Read));
        assert!(acl.allows("c", None, "public/x", Access::Read));
        // A %u pattern grants nothing to a client without a user name.
        assert!(!acl.allows("c", None, "homes//door", Access::Read));
    }
}
