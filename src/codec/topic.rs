//! Topic names and filters: validation and matching (MQTT 5 §4.7, §4.8.2).
//! One implementation for the broker's router, the client's `message_callback_add`
//! and `topic_matches_sub`.

/// Why a topic name or filter is invalid.
pub type TopicError = &'static str;

/// A PUBLISH topic: non-empty, no wildcards, no U+0000, at most 65535 bytes.
pub fn validate_topic_name(topic: &str) -> Result<(), TopicError> {
    let _ = topic;
    todo!("codec: validate_topic_name")
}

/// A SUBSCRIBE filter: `#` only last and alone in its level, `+` alone in its level,
/// `$share/{group}/{filter}` well formed.
pub fn validate_topic_filter(filter: &str) -> Result<(), TopicError> {
    let _ = filter;
    todo!("codec: validate_topic_filter")
}

/// Whether `topic` matches `filter`; wildcards at the first level do not match topics
/// that begin with `$`.
pub fn matches(filter: &str, topic: &str) -> bool {
    let _ = (filter, topic);
    todo!("codec: matches")
}

/// `$share/{group}/{filter}` split into group and filter; `None` for an ordinary filter.
pub fn parse_shared(filter: &str) -> Option<(&str, &str)> {
    let _ = filter;
    todo!("codec: parse_shared")
}
