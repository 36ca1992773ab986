//! Topic names and filters: validation and matching (MQTT 5 §4.7, §4.8.2).
//! One implementation for the broker's router, the client's `message_callback_add`
//! and `topic_matches_sub`.

/// Why a topic name or filter is invalid.
pub type TopicError = &'static str;

const SHARE_PREFIX: &str = "$share/";

fn check_common(s: &str) -> Result<(), TopicError> {
    // §4.7.3: at least one character, at most 65535 bytes, no U+0000.
    if s.is_empty() {
        return Err("empty topic");
    }
    if s.len() > u16::MAX as usize {
        return Err("topic longer than 65535 bytes");
    }
    if s.as_bytes().contains(&0) {
        return Err("topic contains U+0000");
    }
    Ok(())
}

/// A PUBLISH topic: non-empty, no wildcards, no U+0000, at most 65535 bytes.
pub fn validate_topic_name(topic: &str) -> Result<(), TopicError> {
    if topic.is_empty() {
        return Err("empty topic");
    }
    if topic.len() > u16::MAX as usize {
        return Err("topic longer than 65535 bytes");
    }
    // One word-at-a-time pass finds NUL and wildcards together.
    if super::wire::scan_topic(topic.as_bytes()).1 {
        if topic.as_bytes().contains(&0) {
            return Err("topic contains U+0000");
        }
        // [MQTT-3.3.2-2] no wildcard characters in a topic name.
        return Err("wildcard in topic name");
    }
    Ok(())
}

/// A SUBSCRIBE filter: `#` only last and alone in its level, `+` alone in its level,
/// `$share/{group}/{filter}` well formed.
pub fn validate_topic_filter(filter: &str) -> Result<(), TopicError> {
    check_common(filter)?;
    if let Some(rest) = filter.strip_prefix(SHARE_PREFIX) {
        // §4.8.2: a ShareName of at least one character without "/", "+" or "#",
        // followed by "/" and a topic filter.
        let Some((group, inner)) = rest.split_once('/') else {
            return Err("shared subscription without a topic filter");
        };
        if group.is_empty() {
            return Err("shared subscription with an empty share name");
        }
        if group.bytes().any(|b| b == b'+' || b == b'#') {
            return Err("wildcard in share name");
        }
        if inner.is_empty() {
            return Err("shared subscription without a topic filter");
        }
        return validate_levels(inner);
    }
    validate_levels(filter)
}

fn validate_levels(filter: &str) -> Result<(), TopicError> {
    let mut levels = filter.split('/').peekable();
    while let Some(level) = levels.next() {
        let b = level.as_bytes();
        if b.contains(&b'#') {
            // [MQTT-4.7.1-1] alone in its level and the last level.
            if b != b"#" {
                return Err("'#' not alone in its level");
            }
            if levels.peek().is_some() {
                return Err("'#' not the last level");
            }
        }
        // [MQTT-4.7.1-2] '+' occupies an entire level.
        if b.contains(&b'+') && b != b"+" {
            return Err("'+' not alone in its level");
        }
    }
    Ok(())
}

/// Whether `topic` matches `filter`; wildcards at the first level do not match topics
/// that begin with `$` ([MQTT-4.7.2-1]). Neither is validated; a shared filter must be
/// split with [`parse_shared`] first. Allocation-free.
pub fn matches(filter: &str, topic: &str) -> bool {
    let f = filter.as_bytes();
    let t = topic.as_bytes();
    if t.first() == Some(&b'$') && matches!(f.first(), Some(b'+' | b'#')) {
        return false;
    }
    let (mut fi, mut ti) = (0usize, 0usize);
    loop {
        let fend = level_end(f, fi);
        let flevel = &f[fi..fend];
        if flevel == b"#" {
            // Also matches the parent level: "a/#" matches "a" (§4.7.1.2).
            return true;
        }
        let tend = level_end(t, ti);
        if flevel != b"+" && flevel != &t[ti..tend] {
            return false;
        }
        let f_done = fend == f.len();
        let t_done = tend == t.len();
        match (f_done, t_done) {
            (true, true) => return true,
            (false, true) => return &f[fend..] == b"/#",
            (true, false) => return false,
            (false, false) => {
                fi = fend + 1;
                ti = tend + 1;
            }
        }
    }
}

#[inline]
fn level_end(s: &[u8], from: usize) -> usize {
    match s[from..].iter().position(|&b| b == b'/') {
        Some(p) => from + p,
        None => s.len(),
    }
}

/// The number of levels of a topic name or filter: one more than its `/` separators.
pub fn level_count(topic_or_filter: &str) -> usize {
    topic_or_filter.bytes().filter(|&b| b == b'/').count() + 1
}

/// `$share/{group}/{filter}` split into group and filter; `None` for an ordinary filter.
pub fn parse_shared(filter: &str) -> Option<(&str, &str)> {
    filter.strip_prefix(SHARE_PREFIX)?.split_once('/')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_names() {
        assert!(validate_topic_name("a/b").is_ok());
        assert!(validate_topic_name("/").is_ok());
        assert!(validate_topic_name("$SYS/x").is_ok());
        assert_eq!(validate_topic_name(""), Err("empty topic"));
        assert_eq!(validate_topic_name("a/+"), Err("wildcard in topic name"));
        assert_eq!(validate_topic_name("a/#"), Err("wildcard in topic name"));
        assert_eq!(validate_topic_name("a\0b"), Err("topic contains U+0000"));
        assert!(validate_topic_name(&"a".repeat(65536)).is_err());
        assert!(validate_topic_name(&"a".repeat(65535)).is_ok());
    }

    #[test]
    fn topic_filters() {
        for ok in [
            "#",
            "+",
            "a/#",
            "a/+/b",
            "+/+",
            "/+",
            "a//b",
            "$share/g/a/#",
            "$share/g/#",
            "sport/+",
        ] {
            assert!(validate_topic_filter(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "a#",
            "a/#/b",
            "a/b#",
            "a+/b",
            "a/+b",
            "#/a",
            "$share/",
            "$share/g",
            "$share//a",
            "$share/g/",
            "$share/g+/a",
            "$share/g#/a",
            "$share/g/a#",
        ] {
            assert!(validate_topic_filter(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn matching() {
        let yes = [
            ("#", "a"),
            ("#", "a/b/c"),
            ("a/#", "a"),
            ("a/#", "a/b"),
            ("a/#", "a/b/c"),
            ("+", "a"),
            ("+/+", "a/b"),
            ("a/+", "a/"),
            ("+/b", "/b"),
            ("a/+/c", "a/b/c"),
            ("a/b", "a/b"),
            ("sport/tennis/player1/#", "sport/tennis/player1"),
            ("$SYS/#", "$SYS/broker"),
            ("$SYS/+", "$SYS/x"),
            ("/+", "/finance"),
            ("+/+", "/finance"),
        ];
        for (f, t) in yes {
            assert!(matches(f, t), "{f} should match {t}");
        }
        let no = [
            ("a/b", "a"),
            ("a", "a/b"),
            ("+", "a/b"),
            ("+", "/finance"),
            ("a/+", "a"),
            ("a/+", "a/b/c"),
            ("a/b/c", "a/b"),
            ("#", "$SYS/x"),
            ("+/x", "$SYS/x"),
            ("a/#", "ab"),
            ("a", "A"),
            ("sport/+", "sport"),
        ];
        for (f, t) in no {
            assert!(!matches(f, t), "{f} should not match {t}");
        }
    }

    #[test]
    fn levels_are_counted_by_separators() {
        assert_eq!(level_count("a"), 1);
        assert_eq!(level_count("/"), 2);
        assert_eq!(level_count("a/b/#"), 3);
        assert_eq!(level_count(&vec!["x"; 201].join("/")), 201);
    }

    #[test]
    fn shared() {
        assert_eq!(parse_shared("$share/g/a/b"), Some(("g", "a/b")));
        assert_eq!(parse_shared("$share/g/#"), Some(("g", "#")));
        assert_eq!(parse_shared("a/b"), None);
        assert_eq!(parse_shared("$sharex/g/a"), None);
    }
}
