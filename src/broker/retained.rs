//! Retained messages (MQTT 5 §3.3.1.3): set, replaced, and cleared by an empty payload,
//! kept in a tree of topic levels like the subscription tree, so a SUBSCRIBE finds what
//! its filter matches by walking the filter's levels instead of testing every topic.
//!
//! Children are kept sorted, so messages come out in topic order: level by level, each
//! level compared as bytes, a parent before its children. A walk is a loop (a topic may
//! have tens of thousands of levels), resumable from a [`Cursor`] and bounded per call
//! in nodes visited and messages found: the router lock, under which the store lives,
//! is never held for work proportional to the store, and the messages of a filter that
//! matches many are handed out as the subscriber's queue takes them.

use std::collections::btree_map::{self, BTreeMap};
use std::ops::Bound;
use std::sync::Arc;
use std::time::Instant;

use crate::codec::{ByteStr, QoS};

use super::message::Message;

#[derive(Default)]
struct Node {
    children: BTreeMap<Box<str>, Node>,
    message: Option<Arc<Message>>,
}

impl Drop for Node {
    /// Takes the subtree apart level by level: the derived drop would recurse once per
    /// level.
    fn drop(&mut self) {
        let mut stack: Vec<Node> = std::mem::take(&mut self.children).into_values().collect();
        while let Some(mut node) = stack.pop() {
            stack.extend(std::mem::take(&mut node.children).into_values());
        }
    }
}

/// Where the walk of one filter through the store stands: after the topic (or inner
/// node) it visited last. Kept by the caller between calls of
/// [`RetainedStore::next_matching`]; the store may change in between (a message set or
/// cleared ahead of the cursor is seen as it is when the walk gets there).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Cursor {
    /// The levels of the last node visited, joined by `/`; None before the first call.
    after: Option<String>,
    done: bool,
}

impl Cursor {
    pub fn is_done(&self) -> bool {
        self.done
    }
}

/// The store: a tree of topic levels with the message of each topic at its node.
#[derive(Default)]
pub struct RetainedStore {
    root: Node,
    count: usize,
}

/// The filter being walked, split into levels.
struct Filter<'f> {
    levels: Vec<&'f str>,
    /// Ends with `#`: everything below the level before it matches, that level too.
    multi: bool,
    /// Starts with a wildcard: topics beginning with `$` do not match (§4.7.2).
    wild_first: bool,
}

impl<'f> Filter<'f> {
    fn new(filter: &'f str) -> Self {
        let levels: Vec<&str> = filter.split('/').collect();
        Self {
            multi: levels.last() == Some(&"#"),
            wild_first: matches!(levels[0], "+" | "#"),
            levels,
        }
    }

    /// Whether a node `depth` levels down, reached through matching levels, matches.
    fn matches_at(&self, depth: usize) -> bool {
        let m = self.levels.len();
        if self.multi {
            // "sport/#" matches "sport" too (§4.7.1.2).
            depth + 1 >= m
        } else {
            depth == m
        }
    }

    /// The children of `node` (at `depth`) the walk goes on to, those after `after`.
    fn children<'a>(&self, node: &'a Node, depth: usize, after: Option<&str>) -> Children<'a> {
        let m = self.levels.len();
        let all = if depth < m {
            matches!(self.levels[depth], "+" | "#")
        } else {
            self.multi
        };
        if all {
            let range = match after {
                Some(a) => node
                    .children
                    .range::<str, _>((Bound::Excluded(a), Bound::Unbounded)),
                None => node.children.range::<str, _>(..),
            };
            return Children::All(range);
        }
        if depth < m {
            let level = self.levels[depth];
            if after.is_none_or(|a| a < level) {
                return Children::One(node.children.get_key_value(level).map(|(k, n)| (&**k, n)));
            }
        }
        Children::One(None)
    }
}

enum Children<'a> {
    All(btree_map::Range<'a, Box<str>, Node>),
    One(Option<(&'a str, &'a Node)>),
}

impl<'a> Iterator for Children<'a> {
    type Item = (&'a str, &'a Node);

    fn next(&mut self) -> Option<Self::Item> {
        match self {
            Children::All(range) => range.next().map(|(k, n)| (&**k, n)),
            Children::One(one) => one.take(),
        }
    }
}

/// A node on the walk's path, with the children of it still to visit.
struct Frame<'a> {
    /// The node's own level (empty for the root).
    level: &'a str,
    depth: usize,
    children: Children<'a>,
}

impl RetainedStore {
    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Stores `message` as its topic's retained message, or clears it if the payload is
    /// empty (§3.3.1.3).
    pub fn store(&mut self, message: &Arc<Message>) {
        if message.payload.is_empty() {
            self.remove(&message.topic, None);
            return;
        }
        let mut node = &mut self.root;
        for level in message.topic.split('/') {
            node = node.children.entry(Box::from(level)).or_default();
        }
        if node.message.replace(message.clone()).is_none() {
            self.count += 1;
        }
    }

    /// The retained message of `topic`, if any.
    pub fn get(&self, topic: &str) -> Option<&Arc<Message>> {
        let mut node = &self.root;
        for level in topic.split('/') {
            node = node.children.get(level)?;
        }
        node.message.as_ref()
    }

    /// Removes the message of `topic` (only if it is `only`, when given), and the
    /// branch that held nothing else. The highest node to cut is found by a read-only
    /// walk first, as a mutable walk cannot keep its ancestors.
    fn remove(&mut self, topic: &str, only: Option<&Arc<Message>>) {
        let mut cut: Option<(usize, &str)> = None;
        let mut node = &self.root;
        for (depth, level) in topic.split('/').enumerate() {
            let Some(child) = node.children.get(level) else {
                return;
            };
            if depth == 0 || node.message.is_some() || node.children.len() > 1 {
                cut = Some((depth, level));
            }
            node = child;
        }
        match (&node.message, only) {
            (None, _) => return,
            (Some(m), Some(only)) if !Arc::ptr_eq(m, only) => return,
            _ => {}
        }
        self.count -= 1;
        if node.children.is_empty() {
            let (cut_depth, cut_level) = cut.expect("the root always stays");
            let mut keeper = &mut self.root;
            for level in topic.split('/').take(cut_depth) {
                keeper = keeper.children.get_mut(level).expect("walked above");
            }
            keeper.children.remove(cut_level);
        } else {
            let mut node = &mut self.root;
            for level in topic.split('/') {
                node = node.children.get_mut(level).expect("walked above");
            }
            node.message = None;
        }
    }

    /// Appends to `out` the next messages matching `filter` (a valid topic filter, not
    /// a shared one) after `cursor`, in topic order: at most `max_messages`, visiting
    /// at most `max_nodes` nodes. Expired messages are skipped and removed. Returns true
    /// when the walk is complete (the cursor says so too).
    pub fn next_matching(
        &mut self,
        filter: &str,
        cursor: &mut Cursor,
        now: Instant,
        max_messages: usize,
        max_nodes: usize,
        out: &mut Vec<Arc<Message>>,
    ) -> bool {
        if cursor.done {
            return true;
        }
        let filter = Filter::new(filter);
        let mut expired: Vec<(ByteStr, Arc<Message>)> = Vec::new();
        let mut stack: Vec<Frame<'_>> = Vec::new();
        match cursor.after.as_deref() {
            None => stack.push(Frame {
                level: "",
                depth: 0,
                children: filter.children(&self.root, 0, None),
            }),
            Some(path) => {
                // Rebuild the walk's stack along the path: at each level the siblings
                // after it, then what lies below its end (visited, children not yet).
                let mut node = &self.root;
                let mut level = "";
                let mut reached = true;
                for (depth, next) in path.split('/').enumerate() {
                    stack.push(Frame {
                        level,
                        depth,
                        children: filter.children(node, depth, Some(next)),
                    });
                    match node.children.get_key_value(next) {
                        Some((k, child)) => {
                            node = child;
                            level = k;
                        }
                        None => {
                            // Removed since: its siblings after it are where to go on.
                            reached = false;
                            break;
                        }
                    }
                }
                if reached {
                    let depth = stack.len();
                    stack.push(Frame {
                        level,
                        depth,
                        children: filter.children(node, depth, None),
                    });
                }
            }
        }
        let (mut found, mut visited) = (0usize, 0usize);
        let mut stopped_at = None;
        while let Some(frame) = stack.last_mut() {
            let Some((level, child)) = frame.children.next() else {
                stack.pop();
                continue;
            };
            let depth = frame.depth + 1;
            if depth == 1 && filter.wild_first && level.starts_with('$') {
                continue;
            }
            visited += 1;
            if let Some(m) = &child.message {
                if filter.matches_at(depth) {
                    if m.expired(now) {
                        expired.push((m.topic.clone(), m.clone()));
                    } else {
                        out.push(m.clone());
                        found += 1;
                    }
                }
            }
            stack.push(Frame {
                level,
                depth,
                children: filter.children(child, depth, None),
            });
            if found >= max_messages || visited >= max_nodes {
                let path: Vec<&str> = stack[1..].iter().map(|f| f.level).collect();
                stopped_at = Some(path.join("/"));
                break;
            }
        }
        drop(stack);
        for (topic, m) in &expired {
            self.remove(topic, Some(m));
        }
        cursor.done = stopped_at.is_none();
        cursor.after = stopped_at;
        cursor.done
    }

    /// Every message matching `filter`, in topic order (for small stores and tests: a
    /// SUBSCRIBE walks with a cursor).
    pub fn matching(&mut self, filter: &str, now: Instant) -> Vec<Arc<Message>> {
        let mut out = Vec::new();
        let mut cursor = Cursor::default();
        while !self.next_matching(filter, &mut cursor, now, usize::MAX, usize::MAX, &mut out) {}
        out
    }
}

/// The retained messages a subscription still has to receive (§3.8.4: sent on
/// subscribe), walked a step at a time as the subscriber's queue takes them.
#[derive(Debug, Clone)]
pub struct RetainedJob {
    /// The filter as subscribed (never a shared one: those get no retained messages).
    pub filter: String,
    /// The subscription's maximum QoS.
    pub qos: QoS,
    pub subscription_id: Option<u32>,
    pub cursor: Cursor,
}

/// The retained deliveries one connection has pending, in the order of its
/// subscriptions. At most one per filter: subscribing again starts that filter's over
/// (the retained messages are sent again, §3.3.1.3), unsubscribing cancels it. So the
/// list is bounded by the session's subscriptions.
#[derive(Debug, Default)]
pub struct PendingRetained {
    jobs: std::collections::VecDeque<RetainedJob>,
}

impl PendingRetained {
    pub fn add(&mut self, filter: &str, qos: QoS, subscription_id: Option<u32>) {
        let job = RetainedJob {
            filter: filter.to_string(),
            qos,
            subscription_id,
            cursor: Cursor::default(),
        };
        match self.jobs.iter_mut().find(|j| j.filter == filter) {
            Some(existing) => *existing = job,
            None => self.jobs.push_back(job),
        }
    }

    pub fn cancel(&mut self, filter: &str) {
        self.jobs.retain(|j| j.filter != filter);
    }

    /// The job to work on next.
    pub fn front_mut(&mut self) -> Option<&mut RetainedJob> {
        self.jobs.front_mut()
    }

    /// Drops the front job (its walk is done).
    pub fn pop_front(&mut self) {
        self.jobs.pop_front();
    }

    pub fn is_empty(&self) -> bool {
        self.jobs.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use std::time::Duration;

    fn msg(topic: &str, payload: &'static [u8]) -> Arc<Message> {
        Arc::new(Message::new(
            ByteStr::from(topic),
            Bytes::from_static(payload),
            QoS::AtMostOnce,
            true,
        ))
    }

    fn store(topics: &[&str]) -> RetainedStore {
        let mut s = RetainedStore::default();
        for t in topics {
            s.store(&msg(t, b"x"));
        }
        s
    }

    fn topics(s: &mut RetainedStore, filter: &str) -> Vec<String> {
        s.matching(filter, Instant::now())
            .iter()
            .map(|m| m.topic.to_string())
            .collect()
    }

    /// The walk in steps of `step` messages and `nodes` nodes, as a SUBSCRIBE does it.
    fn stepped(s: &mut RetainedStore, filter: &str, step: usize, nodes: usize) -> Vec<String> {
        let mut cursor = Cursor::default();
        let mut out = Vec::new();
        let mut calls = 0;
        while !s.next_matching(filter, &mut cursor, Instant::now(), step, nodes, &mut out) {
            calls += 1;
            assert!(calls < 10_000, "the walk makes progress");
        }
        assert!(cursor.is_done());
        out.iter().map(|m| m.topic.to_string()).collect()
    }

    const TOPICS: &[&str] = &[
        "sport/tennis/player1",
        "sport/tennis/player2",
        "sport",
        "sport/",
        "sport/football",
        "/finance",
        "$SYS/uptime",
        "$SYS/load/1",
        "a/b/c",
        "a/x/c",
        "a b",
    ];

    #[test]
    fn wildcards_match_per_spec_in_topic_order() {
        let mut s = store(TOPICS);
        assert_eq!(s.len(), TOPICS.len());
        assert_eq!(
            topics(&mut s, "sport/#"),
            vec![
                "sport",
                "sport/",
                "sport/football",
                "sport/tennis/player1",
                "sport/tennis/player2"
            ]
        );
        assert_eq!(
            topics(&mut s, "sport/tennis/+"),
            vec!["sport/tennis/player1", "sport/tennis/player2"]
        );
        assert_eq!(topics(&mut s, "sport/+"), vec!["sport/", "sport/football"]);
        assert_eq!(topics(&mut s, "+"), vec!["a b", "sport"]);
        assert_eq!(
            topics(&mut s, "+/+"),
            vec!["/finance", "sport/", "sport/football"]
        );
        assert_eq!(topics(&mut s, "a/+/c"), vec!["a/b/c", "a/x/c"]);
        assert_eq!(topics(&mut s, "a/b/c"), vec!["a/b/c"]);
        assert_eq!(topics(&mut s, "a/b"), Vec::<String>::new());
        assert_eq!(topics(&mut s, "a/b/c/#"), vec!["a/b/c"]);
        assert_eq!(topics(&mut s, "nothing/#"), Vec::<String>::new());
        let all = topics(&mut s, "#");
        assert_eq!(all.len(), TOPICS.len() - 2);
        assert_eq!(all[0], "/finance");
        // Every walk agrees with the topic matcher.
        for filter in [
            "#",
            "+",
            "+/+",
            "sport/#",
            "+/tennis/#",
            "a/+/c",
            "$SYS/#",
            "+/+/+",
        ] {
            let mut expected: Vec<&str> = TOPICS
                .iter()
                .copied()
                .filter(|t| crate::codec::topic::matches(filter, t))
                .collect();
            expected.sort_by(|a, b| a.split('/').cmp(b.split('/')));
            assert_eq!(topics(&mut s, filter), expected, "{filter}");
        }
    }

    #[test]
    fn dollar_topics_are_not_matched_by_a_leading_wildcard() {
        let mut s = store(TOPICS);
        assert!(topics(&mut s, "#").iter().all(|t| !t.starts_with('$')));
        assert!(topics(&mut s, "+/uptime").is_empty());
        assert_eq!(topics(&mut s, "$SYS/#"), vec!["$SYS/load/1", "$SYS/uptime"]);
        assert_eq!(topics(&mut s, "$SYS/+/1"), vec!["$SYS/load/1"]);
    }

    #[test]
    fn set_replace_and_clear() {
        let mut s = store(&["a/b", "a/b/c"]);
        s.store(&msg("a/b", b"new"));
        assert_eq!(s.len(), 2);
        assert_eq!(&s.get("a/b").unwrap().payload[..], b"new");
        s.store(&msg("a/b", b""));
        assert_eq!(s.len(), 1);
        assert!(s.get("a/b").is_none());
        assert_eq!(topics(&mut s, "a/#"), vec!["a/b/c"]);
        s.store(&msg("a/b/c", b""));
        s.store(&msg("never/set", b""));
        assert!(s.is_empty());
        assert!(s.root.children.is_empty(), "empty branches are pruned");
    }

    #[test]
    fn a_walk_in_small_steps_finds_the_same_messages() {
        let mut s = RetainedStore::default();
        for i in 0..500 {
            s.store(&msg(&format!("r/{}/{}", i % 7, i), b"x"));
        }
        s.store(&msg("$r/1", b"x"));
        for filter in ["#", "r/#", "r/+/+", "+/3/#", "r/2/+", "r/4/404", "x/#"] {
            let whole = topics(&mut s, filter);
            for (step, nodes) in [(1, usize::MAX), (7, 3), (usize::MAX, 1), (3, 2)] {
                assert_eq!(stepped(&mut s, filter, step, nodes), whole, "{filter}");
            }
        }
        assert_eq!(topics(&mut s, "r/#").len(), 500);
    }

    #[test]
    fn a_walk_goes_on_after_the_store_changed() {
        let mut s = store(&["k/1", "k/2", "k/3/x", "k/4", "k/5"]);
        let mut cursor = Cursor::default();
        let mut out = Vec::new();
        let now = Instant::now();
        assert!(!s.next_matching("k/#", &mut cursor, now, 3, usize::MAX, &mut out));
        // The cursor stands on k/3/x; its branch and the message before go, one comes.
        s.store(&msg("k/3/x", b""));
        s.store(&msg("k/1", b""));
        s.store(&msg("k/35", b"x"));
        while !s.next_matching("k/#", &mut cursor, now, 1, usize::MAX, &mut out) {}
        let got: Vec<&str> = out.iter().map(|m| m.topic.as_str()).collect();
        assert_eq!(got, vec!["k/1", "k/2", "k/3/x", "k/35", "k/4", "k/5"]);
        assert!(
            s.next_matching("k/#", &mut cursor, now, 1, 1, &mut out),
            "done stays done"
        );
    }

    #[test]
    fn expired_messages_are_skipped_and_removed() {
        let mut s = store(&["e/keep"]);
        let mut m = Message::new(
            ByteStr::from("e/old"),
            Bytes::from_static(b"x"),
            QoS::AtMostOnce,
            true,
        );
        let now = Instant::now();
        m.set_expiry(Some(1), now);
        s.store(&Arc::new(m));
        assert_eq!(s.len(), 2);
        let later = now + Duration::from_secs(2);
        let got: Vec<String> = s
            .matching("e/#", later)
            .iter()
            .map(|m| m.topic.to_string())
            .collect();
        assert_eq!(got, vec!["e/keep"]);
        assert_eq!(s.len(), 1);
        assert!(s.get("e/old").is_none());
    }

    #[test]
    fn deep_topics_are_stored_walked_and_dropped_without_recursion() {
        std::thread::Builder::new()
            .stack_size(256 * 1024)
            .spawn(|| {
                let levels = 100_000;
                let topic = vec!["d"; levels].join("/");
                let mut s = RetainedStore::default();
                s.store(&msg(&topic, b"deep"));
                s.store(&msg(&format!("{topic}/e"), b"deeper"));
                assert_eq!(topics(&mut s, "#").len(), 2);
                assert_eq!(stepped(&mut s, "d/#", 1, 1000).len(), 2);
                let mut plus = vec!["d"; levels];
                plus[1] = "+";
                assert_eq!(topics(&mut s, &plus.join("/")), vec![topic.clone()]);
                s.store(&msg(&format!("{topic}/e"), b""));
                assert_eq!(s.len(), 1);
                drop(s);
                let mut s = RetainedStore::default();
                s.store(&msg(&topic, b"deep"));
                s.store(&msg(&topic, b""));
                assert!(s.root.children.is_empty());
            })
            .expect("thread")
            .join()
            .expect("no stack overflow");
    }

    #[test]
    fn pending_jobs_are_one_per_filter() {
        let mut p = PendingRetained::default();
        p.add("a/#", QoS::AtMostOnce, None);
        p.add("b/+", QoS::AtLeastOnce, Some(3));
        p.front_mut().unwrap().cursor.after = Some("a/x".into());
        p.add("a/#", QoS::ExactlyOnce, Some(4));
        let front = p.front_mut().unwrap();
        assert_eq!(
            (front.filter.as_str(), front.qos),
            ("a/#", QoS::ExactlyOnce)
        );
        assert_eq!(
            front.cursor,
            Cursor::default(),
            "subscribing again starts over"
        );
        p.cancel("a/#");
        assert_eq!(p.front_mut().unwrap().filter, "b/+");
        p.pop_front();
        assert!(p.is_empty());
    }
}
